"""Tab completion that understands shell-style quoting.

readline only splits on white space here, so a name with spaces arrives in
pieces. We re-read the line up to the cursor ourselves, find where the
current argument really starts and how it is quoted, and hand readline just
the part after its split point, quoted the way the user began it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List

DELIMS = " \t\n"
_SPECIAL = set(" \t\n\\\"'")


@dataclass(frozen=True)
class Partial:
    words: List[str]     # finished words before the cursor (command included)
    start: int           # index in the line where the current word starts
    value: str           # the current word, unquoted so far
    quote: str           # the open quote character, or ""


def split_partial(line: str) -> Partial:
    """Split `line` (the text up to the cursor) like shlex, keeping the tail open."""
    words: List[str] = []
    value, quote, start, in_word, escaped = "", "", len(line), False, False
    for index, char in enumerate(line):
        if escaped:
            value, escaped = value + char, False
        elif quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"':
                escaped = True
            else:
                value += char
        elif char in DELIMS:
            if in_word:
                words.append(value)
                value, in_word, start = "", False, len(line)
        else:
            if not in_word:
                in_word, start = True, index
            if char == "\\":
                escaped = True
            elif char in "\"'":
                quote = char
            else:
                value += char
    return Partial(words, start, value, quote)


def render(word: str, quote: str) -> str:
    """`word` as the user would type it, in the quoting style they began."""
    if quote == "'" and "'" not in word:
        return f"'{word}'"
    if quote:
        return '"' + "".join("\\" + c if c in '"\\' else c for c in word) + '"'
    return "".join("\\" + c if c in _SPECIAL else c for c in word)


def matches(partial: Partial, candidates: Iterable[str], begidx: int,
            line_start: str) -> List[str]:
    """Completions for readline: each replaces line[begidx:cursor]."""
    typed = line_start[partial.start:begidx]       # already left of readline's split
    found = []
    for word in sorted(set(candidates)):
        if not word.startswith(partial.value):
            continue
        shown = render(word, partial.quote)
        if partial.quote and word.endswith("/"):
            shown = shown[:-1]                     # leave the quote open: the path goes on
        if shown.startswith(typed):
            found.append(shown[len(typed):])
    return found


def local_paths(prefix: str, dirs_only: bool = False) -> List[str]:
    """Local files (and directories, with a trailing /) starting with `prefix`."""
    head, tail = os.path.split(prefix)
    directory = os.path.expanduser(head) if head else "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.startswith(tail) or (name.startswith(".") and not tail.startswith(".")):
            continue
        is_dir = os.path.isdir(os.path.join(directory, name))
        if dirs_only and not is_dir:
            continue
        found.append(os.path.join(head, name) + ("/" if is_dir else ""))
    return found
