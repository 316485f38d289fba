"""`C path size sha256 [mtime]`: a resumable upload, as a session serves it.

The partial bound to the account, path, size and digest (partials.py
names it) is continued after the bytes it holds: the client hears `OK
<held>` and sends the rest, which is committed like `P` (and, like `P`,
within the account's quota). Cut off, the partial is kept for the next
`C`; refused or failed otherwise, it is dropped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional, Tuple

from ftpd import protocol
from ftpd.protocol import CONFLICT, TIMEOUT
from ftpd.server import partials
from ftpd.server.library import LibraryError
from ftpd.stream import StreamClosed, StreamTimeout

if TYPE_CHECKING:
    from ftpd.server.session import Session

Path = Tuple[str, ...]


def continue_upload(session: "Session", path: Path, size: int, expected: str,
                    mtime: Optional[int]) -> None:
    """The handler of C in the session's dispatch table."""
    session.tree.check_upload(path, size)
    session.share.reserve(session.tree, path, size)
    try:
        _resume(session, path, size, expected, mtime)
    finally:
        session.share.release()


def _resume(session: "Session", path: Path, size: int, expected: str,
            mtime: Optional[int]) -> None:
    tree = session.tree
    key = partials.partial_name(session.who, tree.shown(path), size, expected)
    upload = tree.begin_upload(path, mtime=mtime, partial=key)
    held, keep, started = upload.size, False, time.monotonic()
    try:
        if held > size:
            raise LibraryError(CONFLICT, "the kept partial upload is larger than the file")
        session.send(protocol.ok(held))
        keep = True
        failure = session.receive_into(upload, path, size - held)
        keep = failure is None
        if failure is not None:
            raise failure
        digest = session.share.counted(tree, [path], lambda: upload.commit(expected))
        session.log_transfer("C", path, size - held, started, digest, f"ok from {held}")
        session.send(protocol.ok(size, digest))
    except LibraryError as exc:
        keep = False
        session.log_transfer("C", path, upload.size - held, started, None,
                             f"failed: {exc.text}")
        raise
    except (StreamTimeout, StreamClosed) as exc:
        kept = upload.size
        # Released before it is logged: whoever reads the log line may resume at once.
        upload.abort(keep=tree.partial_ttl > 0)
        session.log_transfer("C", path, kept - held, started, None,
                             f"failed: {str(exc) or 'stalled'}, kept {kept} bytes")
        if isinstance(exc, StreamTimeout):
            session.close_with(TIMEOUT, "data timeout")
        session.hang_up(exc)
    finally:
        upload.abort(keep=keep and tree.partial_ttl > 0)
