"""Client verbs of the tree: list, mkdir, delete, rename, a pipelined walk
and pipelined batches of one-line requests."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ftpd import protocol
from ftpd.client.connection import Connection, encode_request
from ftpd.client.errors import ServerError
from ftpd.protocol import Entry

WalkStep = Tuple[str, List[str], List[Entry]]
# L requests a walk keeps in flight at once, in request bytes: far below any
# socket buffer, so sending a window never waits for replies nobody reads yet.
WALK_WINDOW_BYTES = 16 << 10


def join_path(directory: str, name: str) -> str:
    """A child's path; the root directory is the empty path."""
    return f"{directory}/{name}" if directory else name


def _windows(paths: Sequence[str]) -> Iterator[List[str]]:
    """Split paths into runs whose L requests stay within WALK_WINDOW_BYTES."""
    window: List[str] = []
    size = 0
    for path in paths:
        cost = len(protocol.format_request("L", protocol.encode_path(path)))
        if window and size + cost > WALK_WINDOW_BYTES:
            yield window
            window, size = [], 0
        window.append(path)
        size += cost
    if window:
        yield window


class TreeOps(Connection):
    def list(self, path: Optional[str] = None) -> List[Entry]:
        """Entries of a directory (the session's root without `path`),
        sorted by name; for a file's path, that file's row alone. 404 if
        the path does not exist, 413 if the directory has more entries
        than the server lists."""
        fields = [protocol.encode_path(path)] if path else []
        self._send(protocol.format_request("L", *fields))
        return self._read_listing()

    def mkdir(self, path: str) -> None:
        """Create one directory. 404 if its parent is missing, 409 if the
        path exists, 403 without write access."""
        self.request("M", protocol.encode_path(path))

    def delete(self, path: str) -> None:
        """Remove a file or an empty directory. 404 if missing, 409 for a
        directory that is not empty, 403 without write access or where the
        server keeps what is stored (overwrite = no)."""
        self.request("D", protocol.encode_path(path))

    def rename(self, source: str, target: str) -> None:
        """Move a file or directory to `target` in one atomic step. 404 if
        `source` or the parent of `target` is missing; 409 if `target` is
        a directory or lies inside `source`; replacing a file is 403 where
        the server does not overwrite."""
        self.request("R", protocol.encode_path(source), protocol.encode_path(target))

    def walk(self, path: Optional[str] = None,
             onerror: Optional[Callable[[ServerError], None]] = None) -> Iterator[WalkStep]:
        """Yield (dirpath, dirnames, files) for the directory `path` (the
        root without it: dirpath "") and every directory below it, parents
        before children, like os.walk: dirnames are the sub-directories'
        names (remove some in place to skip them), files the file Entries.

        The order is breadth-first: each level's L requests travel
        pipelined, one round trip per window instead of one per directory.
        An error on `path` itself is raised (409 if it is a file, as for
        any request that needs a directory); a sub-directory that fails
        (say, removed meanwhile: 404) goes to onerror and is skipped, or
        ends the walk with its ServerError when there is no onerror."""
        top = path or ""
        entries = self.list(path)
        if path and self._names_a_file(path, entries):
            raise ServerError(protocol.CONFLICT, f"not a directory: {path}")
        level: Iterable[Tuple[str, List[Entry]]] = [(top, entries)]
        while True:
            below: List[str] = []
            for dirpath, found in level:
                dirnames = [entry.name for entry in found if entry.is_dir]
                yield dirpath, dirnames, [entry for entry in found if not entry.is_dir]
                below += [join_path(dirpath, name) for name in dirnames]
            if not below:
                return
            level = self._list_all(below, onerror)

    def _names_a_file(self, path: str, entries: List[Entry]) -> bool:
        """L answers a file's path with its one row, which also looks like a
        directory holding a file of its own name: the parent tells them apart."""
        parent, _, base = path.rpartition("/")
        if len(entries) != 1 or entries[0].is_dir or entries[0].name != base:
            return False
        return any(e.name == base and not e.is_dir for e in self.list(parent or None))

    def _list_all(self, paths: Sequence[str], onerror: Optional[Callable[[ServerError], None]]
                  ) -> Iterator[Tuple[str, List[Entry]]]:
        """(path, entries) for each directory, listed a window at a time."""
        for window in _windows(paths):
            for path, outcome in self._list_window(window):
                if isinstance(outcome, list):
                    yield path, outcome
                elif onerror is None:
                    raise outcome
                else:
                    onerror(outcome)

    def _list_window(self, paths: Sequence[str]
                     ) -> List[Tuple[str, Union[List[Entry], ServerError]]]:
        """Send one L per path at once, then read every reply, so a failure
        never leaves replies unread on the connection."""
        self._send(b"".join(protocol.format_request("L", protocol.encode_path(p))
                            for p in paths))
        outcomes: List[Tuple[str, Union[List[Entry], ServerError]]] = []
        for path in paths:
            try:
                outcomes.append((path, self._read_listing()))
            except ServerError as exc:
                if self.closed:
                    raise
                outcomes.append((path, exc))
        return outcomes

    def batch(self, requests: Sequence[Tuple[str, ...]]
              ) -> List[Union[List[str], ServerError]]:
        """Pipeline requests whose reply is one line (H, M, D, R; fields
        already on the wire), a window of WALK_WINDOW_BYTES at a time:
        one round trip per window, not per request. Returns each reply's
        OK fields, or its ServerError; a closing error is raised."""
        outcomes: List[Union[List[str], ServerError]] = []
        window: List[bytes] = []
        size = 0
        for verb, *fields in requests:
            window.append(encode_request(verb, *fields))
            size += len(window[-1])
            if size >= WALK_WINDOW_BYTES:
                outcomes += self._batch_window(window)
                window, size = [], 0
        return outcomes + (self._batch_window(window) if window else [])

    def _batch_window(self, window: List[bytes]) -> List[Union[List[str], ServerError]]:
        self._send(b"".join(window))
        outcomes: List[Union[List[str], ServerError]] = []
        for _ in window:
            try:
                outcomes.append(self._reply())
            except ServerError as exc:
                if self.closed:
                    raise
                outcomes.append(exc)
        return outcomes
