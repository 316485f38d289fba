"""Reading a config file: `[section]` headers and `key = value` lines, checked
against the settings table (and the keys of earlier releases).

Read line by line (not with configparser) so that every complaint can name
the line, the section and the key, and say what to do instead of quoting a
parser's internals. What configparser accepted is still accepted (`:` as
the delimiter, indented comments, upper-case keys); what it silently
turned into something else is refused: an indented line that would
continue the previous value, and a `# comment` after a value, which would
become part of the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ftpd.config import SECTIONS, SETTINGS, ConfigError

BOM = "\ufeff"
_HEADER = re.compile(r"\[([^\[\]]*)\]")
_INLINE_COMMENT = re.compile(r"\s([#;].*)\Z")


KNOWN = frozenset((s.section, s.key) for s in SETTINGS)

# Settings that existed once: a file still carrying one gets what became of
# it instead of "unknown key". (section, key) -> what to do now.
RETIRED: Dict[Tuple[str, str], str] = {
    ("server", "spare_children"):
        "was removed (forking sessions ahead of time was withdrawn before 0.1.0: "
        "fork mode forks on accept); delete the line",
}


def home_section(key: str) -> Optional[str]:
    """The section(s) a known `key` belongs in, as `[server]` or
    `[server] or [metrics]`; None for a key no section knows."""
    homes = dict.fromkeys(s.section for s in SETTINGS if s.key == key)   # table order
    return " or ".join(f"[{home}]" for home in homes) or None


def _check_known(path: str, section: str, key: str, line: int) -> None:
    if (section, key) in KNOWN:
        return
    retired = RETIRED.get((section, key))
    if retired is not None:
        raise ConfigError(retired, path, section, key, line)
    home = home_section(key)
    if home is not None:
        raise ConfigError(f"unknown key in [{section}]: it belongs under {home}",
                          path, section, key, line)
    raise ConfigError("unknown key", path, section, key, line)


def read_file(path: str) -> Dict[Tuple[str, str], str]:
    try:
        with open(path, encoding="utf-8-sig") as handle:     # a BOM is no error
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from exc
    except UnicodeDecodeError as exc:
        line = text_line_of(path, exc.start)
        raise ConfigError(f"is not UTF-8 text ({exc.reason})", path, line=line) from exc
    try:
        sections, entries = parse(text, home_section)
    except SyntaxProblem as exc:
        raise ConfigError(exc.problem, path, exc.section, exc.key, exc.line) from exc
    for section, line in sections.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section (known: {', '.join(SECTIONS)})", path,
                              section, line=line)
    values = {}
    for entry in entries:
        _check_known(path, entry.section, entry.key, entry.line)
        values[(entry.section, entry.key)] = entry.value
    return values


def text_line_of(path: str, offset: int) -> int:
    """The line a byte offset falls on."""
    with open(path, "rb") as handle:
        return handle.read(offset).count(b"\n") + 1


@dataclass(frozen=True)
class Entry:
    section: str
    key: str
    value: str
    line: int


class SyntaxProblem(Exception):
    def __init__(self, problem: str, line: int, section: Optional[str] = None,
                 key: Optional[str] = None):
        super().__init__(problem)
        self.problem, self.line, self.section, self.key = problem, line, section, key


class _Reader:
    """The state between lines: the open section and where things were seen."""

    def __init__(self, home_of: Callable[[str], Optional[str]]):
        self.home_of = home_of          # key -> the section it belongs in, if known
        self.section: Optional[str] = None
        self.last_key: Optional[str] = None
        self.sections: Dict[str, int] = {}
        self.keys: Dict[Tuple[str, str], int] = {}
        self.entries: List[Entry] = []

    def feed(self, number: int, raw: str) -> None:
        text = raw.strip()
        if not text or text[0] in "#;":
            return
        if raw[0] in " \t" and self.last_key is not None:
            raise SyntaxProblem(
                "an indented line would continue this value; values are one line: "
                f"remove the indentation of line {number}", number, self.section, self.last_key)
        if text.startswith("["):
            self.header(number, text)
        else:
            self.setting(number, text)

    def header(self, number: int, text: str) -> None:
        match = _HEADER.match(text)
        if not match or not match.group(1).strip():
            raise SyntaxProblem(f"{text!r} is not a [section] header", number)
        if text[match.end():].strip():
            raise SyntaxProblem(f"nothing may follow a [section] header on its line: {text!r}",
                                number)
        name = match.group(1).strip()
        if name in self.sections:
            raise SyntaxProblem(f"section appears twice (first on line {self.sections[name]})",
                                number, name)
        self.sections[name] = number
        self.section, self.last_key = name, None

    def setting(self, number: int, text: str) -> None:
        cut = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise SyntaxProblem(f"{text!r} is not key = value", number, self.section)
        key, value = text[:cut].strip().lower(), text[cut + 1:].strip()
        if self.section is None:
            home = self.home_of(key)
            hint = f"; it belongs under {home}" if home else ""
            raise SyntaxProblem(f"a setting before any [section] header{hint}", number, None, key)
        comment = _INLINE_COMMENT.search(value)
        if comment:
            raise SyntaxProblem(
                f"comments are not allowed after a value (it would read "
                f"{value!r}): put {comment.group(1)!r} on a line of its own", number,
                self.section, key)
        ident = (self.section, key)
        if ident in self.keys:
            raise SyntaxProblem(f"set twice (first on line {self.keys[ident]})", number,
                                self.section, key)
        self.keys[ident] = number
        self.last_key = key
        self.entries.append(Entry(self.section, key, value, number))


def parse(text: str, home_of: Callable[[str], Optional[str]] = lambda key: None
          ) -> Tuple[Dict[str, int], List[Entry]]:
    """The sections (name -> line) and every `key = value` of `text` in order;
    SyntaxProblem on the first bad line.
    `home_of(key)` names the section a key belongs in, for the hint when a
    setting comes before any header."""
    reader = _Reader(home_of)
    for number, raw in enumerate(text.removeprefix(BOM).splitlines(), start=1):
        reader.feed(number, raw)
    return reader.sections, reader.entries
