"""The `ftpc` command: an interactive shell, or one-shot commands for scripts.

    ftpc HOST[:PORT]                       interactive shell
    ftpc HOST list [PATH] [--json]
    ftpc HOST get NAME [-o PATH|-] [--force] [--continue] [--no-verify]
    ftpc HOST get -r DIR [-o LOCAL] [--force] [--continue]
    ftpc HOST put PATH [--as NAME]
    ftpc HOST put -r DIR [--as NAME] [--force]
    ftpc HOST mkdir [-p] PATH...   rm [-r --yes] PATH...   rmdir PATH...   mv FROM TO
    ftpc HOST hash NAME [--json]
    ftpc --retries N HOST get NAME         resume through a balancer after a cut
    ftpc ftpd://HOST[:PORT]/NAME           the same as: ftpc HOST[:PORT] get NAME
    ftpc -b FILE HOST                      run shell commands from FILE, stop at a failure

This is the only place where ftpc's exceptions become exit codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, Optional, Sequence, TextIO

from ftpd.protocol import DEFAULT_PORT

from ftpd import __version__
from ftpd.client import Client, ConnectionLost, ServerError
from ftpd.sizes import parse_size
from ftpd.ftpc.connect import Target, build_ssl_context, parse_target, resolve_login, split_url
from ftpd.ftpc.display import (human_size, listing_json, listing_table, terminal_lines,
                               transfer_summary)
from ftpd.ftpc.status import (EX_OK, EX_PIPE, broken_pipe, exit_status, message,
                              table_text)
from ftpd.ftpc.operations import entry_of, make_dirs, move, remove_tree
from ftpd.ftpc.paths import absolute, resolve, split
from ftpd.ftpc.status import EX_USAGE
from ftpd.ftpc.transfer import (bar_for, GetOptions, LocalFileError, ProgressFactory, download,
                                download_to_stream, local_target, rate_limited)
from ftpd.ftpc.tree import Summary, TreeOptions
from ftpd.ftpc.tree_get import get_tree
from ftpd.ftpc.tree_put import put_tree
from ftpd.ftpc.upload import upload

EPILOG = f"""\
HOST is a name, an IPv4 address or [IPv6], optionally with :PORT (default {DEFAULT_PORT}),
or a URL ftpd://HOST[:PORT][/NAME]. Without a command, ftpc opens an interactive shell;
with -b FILE, or when standard input is not a terminal, it runs the shell commands it
reads and stops at the first that fails, with that command's exit status.

password: -u USER takes it from $FTPC_PASSWORD, from ~/.netrc, or asks without echo;
without -u, a ~/.netrc entry for HOST logs in. It is never read from the command line.

exit status:
{table_text()}"""


def _common(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-u", "--user", default=default, help="log in as USER")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bar and no success messages")
    parser.add_argument("--timeout", type=float, default=default, metavar="SECONDS",
                        help="connect, greeting and stall timeout (default 30)")
    parser.add_argument("--tls", action="store_true", default=default,
                        help="speak TLS (the server's certificate is verified)")
    parser.add_argument("--cafile", default=default, metavar="PEM",
                        help="trust this CA certificate (implies --tls)")
    parser.add_argument("--insecure", action="store_true", default=default,
                        help="TLS without checking the certificate (implies --tls; unsafe)")
    parser.add_argument("--retries", type=int, default=default, metavar="N",
                        help="after a lost connection (or ERR 421), reconnect and try again "
                             "up to N times; a download resumes where it broke (default 0)")
    parser.add_argument("--limit-rate", type=_rate, default=default, metavar="RATE",
                        help="at most RATE bytes per second, both directions (K, M, G "
                             "suffixes; like curl --limit-rate; default 0: unlimited)")


def _rate(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftpc", usage="%(prog)s [OPTIONS] HOST[:PORT] [COMMAND [ARGS]]",
        description="ftpc: client for ftpd file servers (FTPD/1).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ftpc {__version__}")
    parser.set_defaults(user=None, quiet=False, timeout=30.0, tls=False, cafile=None,
                        insecure=False, retries=0, limit_rate=0)
    _common(parser, argparse.SUPPRESS)
    parser.add_argument("-b", "--batch", metavar="FILE", type=argparse.FileType("r"),
                        help="run shell commands from FILE ('-' = standard input); stop at "
                             "the first that fails and exit with its status")
    parser.add_argument("host", metavar="HOST[:PORT]")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub = commands.add_parser("list", help="list a directory on the server (the root "
                                           "without PATH)")
    sub.add_argument("path", metavar="PATH", nargs="?", default="")
    sub.add_argument("--json", action="store_true", help="print a JSON array")
    sub = commands.add_parser("get", help="download NAME (a whole directory with -r)")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("-r", "--recursive", action="store_true",
                     help="download the directory NAME and everything in it (a mirror: "
                          "identical files are skipped)")
    sub.add_argument("-o", "--output", metavar="PATH", help="where to save it ('-' = stdout)")
    sub.add_argument("-f", "--force", action="store_true", help="replace an existing file")
    sub.add_argument("-c", "--continue", dest="resume", action="store_true",
                     help="resume an interrupted download (always verified)")
    sub.add_argument("--no-verify", dest="verify", action="store_false",
                     help="skip the SHA-256 check after downloading")
    sub = commands.add_parser("put", help="upload PATH (the server checks its SHA-256)")
    sub.add_argument("path", metavar="PATH", help="a local file; '-' = standard input "
                                                  "(with --as NAME)")
    sub.add_argument("--as", dest="name", metavar="NAME", help="store under this name")
    sub.add_argument("-r", "--recursive", action="store_true",
                     help="upload the directory PATH and everything in it (a mirror: "
                          "identical files are skipped)")
    sub.add_argument("-f", "--force", action="store_true",
                     help="with -r: replace files that differ on the server")
    sub.add_argument("-c", "--continue", dest="resume", action="store_true",
                     help="resumable: send only what an interrupted upload lacks")
    _folder_commands(commands)
    sub = commands.add_parser("hash", help="print the size and SHA-256 of NAME")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--json", action="store_true", help="print a JSON object")
    for sub in commands.choices.values():
        _common(sub, argparse.SUPPRESS)
    return parser


def _folder_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    sub = commands.add_parser("mkdir", help="make directories")
    sub.add_argument("-p", "--parents", action="store_true",
                     help="make missing parents too; an existing directory is fine")
    sub.add_argument("paths", metavar="PATH", nargs="+")
    sub = commands.add_parser("rm", help="remove files (directories with -r --yes)")
    sub.add_argument("-r", "--recursive", action="store_true",
                     help="remove directories and everything in them")
    sub.add_argument("-y", "--yes", action="store_true", help="confirm rm -r")
    sub.add_argument("paths", metavar="PATH", nargs="+")
    sub = commands.add_parser("rmdir", help="remove empty directories")
    sub.add_argument("paths", metavar="PATH", nargs="+")
    sub = commands.add_parser("mv", help="move or rename (into TO if it is a directory)")
    sub.add_argument("source", metavar="FROM")
    sub.add_argument("target", metavar="TO")


# -- one-shot commands -----------------------------------------------------------------

def say(args: argparse.Namespace, text: str, stream: Optional[TextIO] = None) -> None:
    if not args.quiet:
        print(terminal_lines(text), file=stream or sys.stdout, flush=True)


def progress_factory(args: argparse.Namespace) -> ProgressFactory:
    return rate_limited(bar_for(args.quiet), args.limit_rate)


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    entries = client.list(resolve("", args.path) or None)
    print(listing_json(entries) if args.json else "\n".join(listing_table(entries)))
    return EX_OK


def cmd_get(client: Client, args: argparse.Namespace) -> int:
    if args.recursive:
        return cmd_get_tree(client, args)
    if args.output == "-":
        if args.resume:
            raise LocalFileError("--continue needs a file, not standard output")
        outcome = download_to_stream(client, args.name, sys.stdout.buffer, args.verify,
                                     progress_factory(args))
        say(args, f"{args.name}: {outcome.size} bytes written", sys.stderr)
        return EX_OK
    target = local_target(args.name, args.output)
    options = GetOptions(force=args.force, resume=args.resume, verify=args.verify)
    outcome = download(client, args.name, target, options, progress_factory(args))
    if outcome.already_complete:
        say(args, f"{outcome.path} is already complete ({human_size(outcome.size)}, "
                  f"sha256 {(outcome.sha256 or '')[:16]}... verified)")
        return EX_OK
    say(args, transfer_summary("saved", outcome.path, outcome.size, outcome.sha256,
                               outcome.resumed_from))
    return EX_OK


def cmd_get_tree(client: Client, args: argparse.Namespace) -> int:
    remote = resolve("", args.name)
    local = args.output or split(remote)[1]
    if not local or local == "-":
        raise LocalFileError("get -r needs a local directory: -o DIR")
    options = TreeOptions(force=args.force, resume=args.resume)
    return tree_status(args, get_tree(client, remote, local, options, progress_factory(args),
                                      lambda text: print(text, file=sys.stderr, flush=True)))


def cmd_put_tree(client: Client, args: argparse.Namespace) -> int:
    remote = resolve("", args.name or os.path.basename(os.path.normpath(args.path)))
    options = TreeOptions(force=args.force)
    return tree_status(args, put_tree(client, args.path, remote, options,
                                      progress_factory(args),
                                      lambda text: print(text, file=sys.stderr, flush=True)))


def tree_status(args: argparse.Namespace, summary: Summary) -> int:
    """The summary goes where success messages go, or with the failures."""
    if summary.status == EX_OK:
        say(args, summary.line())
    else:
        print(summary.line(), file=sys.stderr, flush=True)
    return summary.status


def cmd_mkdir(client: Client, args: argparse.Namespace) -> int:
    for path in args.paths:
        made = make_dirs(client, resolve("", path), args.parents)
        said = [f"made {absolute(p)}" for p in made]
        say(args, "\n".join(said) or f"{absolute(resolve('', path))} exists")
    return EX_OK


def cmd_rm(client: Client, args: argparse.Namespace) -> int:
    if args.recursive and not args.yes:
        return fail(EX_USAGE, "rm -r removes whole directories: add --yes to confirm")
    for path in args.paths:
        remote = resolve("", path)
        say(args, f"removed {absolute(remote)}" + remove(client, remote, args.recursive))
    return EX_OK


def remove(client: Client, remote: str, recursive: bool) -> str:
    """D, or for a directory with `recursive` the whole tree; returns what
    to add to the message."""
    if not remote:
        raise LocalFileError("the root cannot be removed")
    if recursive:
        found = entry_of(client, remote)
        if found is not None and found.is_dir:
            return f" ({remove_tree(client, remote)} entries)"
    client.delete(remote)
    return ""


def cmd_rmdir(client: Client, args: argparse.Namespace) -> int:
    for path in args.paths:
        remote = resolve("", path)
        found = entry_of(client, remote)
        if found is not None and not found.is_dir:
            raise ServerError(409, f"not a directory: {absolute(remote)}")
        client.delete(remote)
        say(args, f"removed {absolute(remote)}")
    return EX_OK


def cmd_mv(client: Client, args: argparse.Namespace) -> int:
    source = resolve("", args.source)
    target = move(client, source, resolve("", args.target))
    say(args, f"moved {absolute(source)} -> {absolute(target)}")
    return EX_OK


def cmd_put(client: Client, args: argparse.Namespace) -> int:
    if args.recursive:
        return cmd_put_tree(client, args)
    # With retries the first attempt is resumable too, so a retry sends only the rest.
    resume = args.resume or args.retries > 0
    outcome = upload(client, args.path, args.name, progress_factory(args), resume=resume)
    say(args, transfer_summary("stored", outcome.path, outcome.size, outcome.sha256))
    return EX_OK


def cmd_hash(client: Client, args: argparse.Namespace) -> int:
    size, digest = client.hash(args.name)
    if args.json:
        print(json.dumps({"name": args.name, "size": size, "sha256": digest}))
    else:
        print(f"{digest}  {args.name}")      # the sha256sum format, for sha256sum -c
    return EX_OK


COMMANDS: Dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "list": cmd_list, "get": cmd_get, "put": cmd_put, "hash": cmd_hash,
    "mkdir": cmd_mkdir, "rm": cmd_rm, "rmdir": cmd_rmdir, "mv": cmd_mv,
}


# -- main --------------------------------------------------------------------------------

def make_target(args: argparse.Namespace) -> Target:
    context = None
    if args.tls or args.cafile or args.insecure:
        context = build_ssl_context(args.cafile, args.insecure)
    return parse_target(args.host, args.timeout, context)


def run(args: argparse.Namespace) -> int:
    target = make_target(args)
    login = resolve_login(target.host, args.user)
    args.tried_login = login is not None       # then a 401 means a wrong password
    _url_path_as_get(args)
    if args.command is None:
        from ftpd.ftpc.batch import run_batch
        from ftpd.ftpc.shell import run_shell
        if args.batch is not None or not sys.stdin.isatty():
            return run_batch(target, login, args.batch or sys.stdin, quiet=args.quiet,
                             limit_rate=args.limit_rate)
        return run_shell(target, login, quiet=args.quiet, limit_rate=args.limit_rate)
    for attempt in range(max(args.retries, 0) + 1):
        try:
            with target.connect() as client:
                if login:
                    client.login(*login)
                return COMMANDS[args.command](client, args)
        except (ConnectionLost, ServerError) as exc:
            if attempt >= args.retries or not _retryable(exc):
                raise
            _before_retry(args, exc, attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _url_path_as_get(args: argparse.Namespace) -> None:
    """`ftpc ftpd://HOST/NAME` downloads NAME, like curl with a URL."""
    path = split_url(args.host)[1]
    if not path:
        return
    if args.command is not None:
        raise ValueError(f"{args.host}: a URL with a file is a download by itself; "
                         "leave the file out to give a command")
    args.command, args.name, args.output, args.recursive = "get", path, None, False
    args.force, args.resume, args.verify = False, False, True


def _retryable(exc: Exception) -> bool:
    # A lost connection, or a node that is draining or full: another try
    # (through a load balancer, likely on another node) can succeed.
    return isinstance(exc, ConnectionLost) or (isinstance(exc, ServerError)
                                               and exc.code in (408, 421))


def _before_retry(args: argparse.Namespace, exc: Exception, attempt: int) -> None:
    delay = min(0.5 * 2 ** attempt, 5.0)
    say(args, f"ftpc: {exc}; retrying in {delay:g}s ({attempt + 1}/{args.retries})",
        sys.stderr)
    time.sleep(delay)
    if args.command == "get" and args.output != "-":
        args.resume = True      # go on from the partial the broken attempt kept


def fail(code: int, text: str) -> int:
    print(f"ftpc: {terminal_lines(text)}", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status is None:
            raise
        if broken_pipe(exc):
            _silence_stdout()
            return EX_PIPE
        return fail(status, message(exc, getattr(args, "tried_login", False)))


def _silence_stdout() -> None:
    # The reader is gone: the interpreter's last flush must not complain either.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
