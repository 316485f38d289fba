"""The command lines of ftpd and ftpc, read from their argparse parsers.

The man page and completion generators (tools/gen_man.py,
tools/gen_completion.py) render this model, so both follow ftpd/cli.py and
ftpd/ftpc/cli.py by construction. argparse has no public API to walk a
parser; its `_actions` list is what argparse-manpage and shtab read too.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

# How a value is completed, by its metavar (what the parsers already say).
VALUE_KINDS = {
    "PATH": "files", "PEM": "files", "DIR": "dirs", "HOST[:PORT]": "hosts",
}
# Positionals whose values are account names of the users file.
ACCOUNT_POSITIONALS = {("ftpd", "passwd", "USER")}


@dataclass(frozen=True)
class Option:
    flags: Tuple[str, ...]
    metavar: Optional[str]          # None: a flag that takes no value
    choices: Tuple[str, ...]
    help: str
    kind: str = ""                  # files, dirs, hosts, accounts or "" (free text)


@dataclass(frozen=True)
class Positional:
    metavar: str
    choices: Tuple[str, ...]
    help: str
    kind: str = ""


@dataclass
class Command:
    prog: str                       # "ftpd" or "ftpd passwd"
    name: str                       # "" for the program itself, else the subcommand
    help: str
    usage: str
    description: str
    epilog: str
    options: List[Option] = field(default_factory=list)
    positionals: List[Positional] = field(default_factory=list)
    subcommands: Dict[str, "Command"] = field(default_factory=dict)

    def value_options(self) -> List[Option]:
        return [o for o in self.options if o.metavar is not None]


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % dict(vars(action), prog="")
    return " ".join(text.split())


def _value_kind(program: str, command: str, metavar: Optional[str]) -> str:
    if (program, command, metavar) in ACCOUNT_POSITIONALS:
        return "accounts"
    return VALUE_KINDS.get(metavar or "", "")


def read_parser(parser: argparse.ArgumentParser, program: str, name: str = "",
                help_text: str = "") -> Command:
    """One level of a parser (and, recursively, its subcommands)."""
    usage = " ".join(parser.format_usage().split()[1:])       # without "usage:"
    command = Command(parser.prog, name, help_text, usage, parser.description or "",
                      parser.epilog or "")
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: _help_text(a) for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                command.subcommands[sub_name] = read_parser(sub, program, sub_name,
                                                            helps.get(sub_name, ""))
            continue
        choices = tuple(str(c) for c in action.choices or ())
        if action.option_strings:
            takes_value = action.nargs != 0
            metavar = (action.metavar or action.dest.upper()) if takes_value else None
            command.options.append(Option(tuple(action.option_strings), metavar, choices,
                                          _help_text(action),
                                          _value_kind(program, name, metavar)))
        else:
            metavar = action.metavar or action.dest
            command.positionals.append(Positional(metavar, choices, _help_text(action),
                                                  _value_kind(program, name, metavar)))
    return command


def ftpd_command() -> Command:
    from ftpd import cli
    return read_parser(cli.build_parser(), "ftpd")


def ftpc_command() -> Command:
    from ftpd.ftpc import cli
    return read_parser(cli.build_parser(), "ftpc")


def programs() -> Dict[str, Command]:
    return {"ftpd": ftpd_command(), "ftpc": ftpc_command()}


def write_main(argv: List[str], summary: str, render: Callable[[], Dict[str, str]],
               default_out: Optional[Path] = None) -> int:
    """The generators' command line: render, then write each file into --out."""
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--out", type=Path, required=default_out is None, default=default_out,
                        help="directory to write into" +
                        (f" (default: {default_out.relative_to(PROJECT)}/)" if default_out else ""))
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text, encoding="utf-8")
    return 0
