"""Remote paths as a person types them: relative to the current remote
directory, `..`, `.`, `/` for the session's root, `-` for the previous one.

On the wire a path has no leading `/` and the root is the empty path
(protocol.md §1); the shell shows it with a leading `/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple


def resolve(cwd: str, typed: str) -> str:
    """The wire path (\"\" for the root) of `typed`, taken from `cwd`.
    `..` above the root stays at the root, as in a shell."""
    parts: List[str] = [] if typed.startswith("/") else [p for p in cwd.split("/") if p]
    for part in typed.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def absolute(path: str) -> str:
    """A wire path as the prompt and messages show it: `/photos/2026`."""
    return "/" + path


def split(path: str) -> Tuple[str, str]:
    """(parent, base) of a wire path; the root's parent is the root."""
    parent, _, base = path.rpartition("/")
    return parent, base


def join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


@dataclass
class RemoteDir:
    """The shell's current remote directory and the one before it (`cd -`)."""
    cwd: str = ""
    previous: str = ""

    def resolve(self, typed: str) -> str:
        return resolve(self.cwd, typed)

    def target(self, typed: str) -> str:
        """Where `cd typed` goes (before the server confirms it is a directory)."""
        if typed == "-":
            return self.previous
        return self.resolve(typed)

    def move_to(self, path: str) -> None:
        self.previous, self.cwd = self.cwd, path
