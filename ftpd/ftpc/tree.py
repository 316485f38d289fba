"""What put -r and get -r share: the tally and its summary line, the
two-step Ctrl-C, and comparing a file on both sides.

A tree transfer is a mirror you can run again: a file whose size and
SHA-256 already match on the other side is skipped, one that differs is
refused unless forced. The first Ctrl-C asks to stop after the current
file; the second aborts at once (Python's own KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Callable, List, Optional

from ftpd.client import ClientError, ConnectionLost, IntegrityError, LocalError, ServerError
from ftpd.fileutil import sha256_run
from ftpd.ftpc.display import human_size, plural
from ftpd.ftpc.transfer import TransferError
from ftpd.ftpc.status import (EX_CONNECTION, EX_INTERRUPTED, EX_OK, EX_REFUSED, EX_USAGE,
                              EX_VERIFY)

Say = Callable[[str], None]


@dataclass(frozen=True)
class TreeOptions:
    force: bool = False      # replace files that differ
    resume: bool = False     # continue partial files (and shorter local files, on get)


@dataclass
class Summary:
    """The tally of one tree transfer; `status` is the first failure's exit status."""
    verb: str                            # "sent" or "received"
    done: int = 0
    skipped: int = 0
    failed: int = 0
    size: int = 0
    status: int = EX_OK
    stopped: str = ""                    # why it ended early, if it did
    started: float = field(default_factory=time.monotonic)
    problems: List[str] = field(default_factory=list)

    def line(self) -> str:
        took = time.monotonic() - self.started
        text = (f"{plural(self.done, 'file')} {self.verb}, {self.skipped} skipped "
                f"(identical), {self.failed} failed; {human_size(self.size)} in {took:.1f} s")
        return f"{text} ({self.stopped})" if self.stopped else text

    def fail(self, what: str, exc: BaseException, say: Say) -> None:
        self.failed += 1
        self.status = self.status or status_of(exc)
        say(f"{what}: {reason(exc)}")


def status_of(exc: BaseException) -> int:
    if isinstance(exc, ServerError):
        return EX_REFUSED
    if isinstance(exc, ConnectionLost):
        return EX_CONNECTION
    if isinstance(exc, IntegrityError):
        return EX_VERIFY
    return EX_USAGE


def reason(exc: BaseException) -> str:
    if isinstance(exc, ServerError):
        return f"refused: {exc.text} (code {exc.code})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class Differs(LocalError):
    """The other side holds a different file of that name (no --force)."""


class Interrupts:
    """The first Ctrl-C only sets `requested`: the transfer stops after the
    current file. It also puts Python's handler back, so a second Ctrl-C
    raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Optional[object] = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._first)
        return self

    def stop_asked(self) -> bool:
        return self.requested

    def _first(self, signum: int, frame: Optional[FrameType]) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)  # type: ignore[arg-type]


def file_digest(path: str) -> str:
    """SHA-256 of a local file (LocalError if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            hexdigest: str = sha256_run(handle).hexdigest()
            return hexdigest
    except OSError as exc:
        raise LocalError(f"cannot read {path}: {exc.strerror or exc}") from exc


def differs(what: str = "the copy on the other side differs") -> Differs:
    return Differs(f"{what}; use --force to replace it")


def abort(summary: Summary, exc: BaseException, say: Say) -> None:
    """The whole transfer cannot go on (connection lost, second Ctrl-C)."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    summary.stopped = "aborted by Ctrl-C" if interrupted else f"stopped: {reason(exc)}"
    summary.status = EX_INTERRUPTED if interrupted else status_of(exc)
    say(summary.line())


def finish(summary: Summary, interrupts: Interrupts, say: Say) -> Summary:
    if interrupts.stop_asked():
        summary.stopped = "stopped by Ctrl-C after the current file"
        summary.status = EX_INTERRUPTED
    return summary


# Past the planning, a ClientError that reaches the top means the session is
# gone (the per-file ones are counted where they happen).
FatalErrors = (ClientError, KeyboardInterrupt)
KeepGoing = (ClientError, TransferError, OSError)
