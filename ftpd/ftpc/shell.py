"""ftpc's interactive shell: cmd.Cmd with readline completion and history.

Every command runs through onecmd(), which turns a refusal, a local problem
or a lost connection into one plain sentence; the shell itself goes on.
"""

from __future__ import annotations

import cmd
import getpass
import inspect
import os
import shlex
import sys
from typing import Callable, Dict, List, NoReturn, Optional, Set, Tuple

from ftpd import protocol
from ftpd.client import Client, ClientError, ConnectionLost, Entry, ServerError
from ftpd.sizes import parse_size
from ftpd.ftpc.connect import Target, resolve_login
from ftpd.ftpc.display import (describe, human_size, listing_table, shown, terminal_lines,
                               transfer_summary)
from ftpd.ftpc.folders import FolderCommands, Unfinished
from ftpd.ftpc.line_editing import LineEditing
from ftpd.ftpc.paths import RemoteDir, absolute
from ftpd.ftpc.status import EX_CONNECTION, EX_OK, EX_USAGE, exit_status, message
from ftpd.ftpc.transfer import (Cancelled, GetOptions, bar_for, download, local_target,
                                rate_limited)
from ftpd.ftpc.upload import upload

MENU = """\
Commands:
  ls [PATH]             list a directory on the server
  cd PATH  pwd          change (.. up, / top, - back) or show the remote directory
  get NAME [LOCAL]      download (options: --force, --continue, --no-verify)
  put LOCAL [NAME]      upload; the server checks its SHA-256
  get -r DIR [LOCAL]    download a directory; put -r DIR [NAME] uploads one
                        (identical files are skipped; --force replaces others)
  mget GLOB...  mput GLOB...   several files by pattern (*.jpg)
  mkdir [-p] PATH  rmdir PATH  rm [-r] PATH...  mv FROM TO
  hash NAME             size and SHA-256 of a file on the server
  login USER            log in (the password is asked without echo)
  lcd [DIR]  lls        change or list the local directory
  open HOST[:PORT]      connect to a server
  rate [RATE]           show or set the transfer speed limit (0: unlimited)
  help [COMMAND]  quit  (Ctrl-D quits too)
Quote names with spaces: get "my file.txt". Tab completes names."""

GET_FLAGS = {"-f": "force", "--force": "force", "-c": "resume", "--continue": "resume",
             "--no-verify": "no_verify", "-r": "recursive"}
PUT_FLAGS = {"-r": "recursive", "-f": "force", "--force": "force", "-c": "resume",
             "--continue": "resume"}


class NotConnected(Exception):
    pass


class UsageError(Exception):
    pass


def split_args(arg: str, usage: str, least: int, most: int,
               flags: Optional[Dict[str, str]] = None) -> Tuple[List[str], set]:
    """shlex words and options of one command; `--` ends the options."""
    words, chosen, options_done = [], set(), False
    for word in shlex.split(arg):
        if not options_done and word == "--":
            options_done = True
        elif not options_done and word.startswith("-") and len(word) > 1:
            if word not in (flags or {}):
                raise UsageError(f"unknown option {word}; usage: {usage}")
            chosen.add((flags or {})[word])
        else:
            words.append(word)
    if not least <= len(words) <= most:
        raise UsageError(f"usage: {usage}")
    return words, chosen


class Shell(LineEditing, FolderCommands, cmd.Cmd):
    def __init__(self, target: Target, login: Optional[Tuple[str, str]], quiet: bool = False,
                 batch: bool = False):
        super().__init__()
        self.target, self.login, self.quiet, self.batch = target, login, quiet, batch
        self.limit_rate = 0          # bytes per second, both directions; 0: unlimited
        self.status = EX_OK        # of the last command, as ftpc would exit with it
        self.where = ""            # in batch mode, the line being run
        self.client: Optional[Client] = None
        self.rdir = RemoteDir()
        self.listings = {}
        self.history = os.environ.get("FTPC_HISTORY") or os.path.expanduser("~/.ftpc_history")

    @property
    def prompt(self) -> str:   # type: ignore[override]
        state = "" if self.connected else " (not connected)"
        where = f":{absolute(self.rdir.cwd)}" if self.rdir.cwd else ""
        return f"ftpc {self.target.label}{where}{state}> "

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    def client_closed(self) -> bool:
        return self.client is not None and self.client.closed

    def words(self, arg: str, usage: str, least: int, most: int,
              flags: Optional[Dict[str, str]] = None) -> Tuple[List[str], Set[str]]:
        return split_args(arg, usage, least, most, flags)

    def out(self, text: str) -> None:
        print(terminal_lines(text), file=self.stdout, flush=True)

    def err(self, text: str) -> None:
        """A failure: on stderr, naming the line, when a script is being run."""
        if self.batch:
            print(f"ftpc: {self.where}{terminal_lines(text)}", file=sys.stderr, flush=True)
        else:
            self.out(text)

    # -- connection ------------------------------------------------------------------

    def connect(self) -> Client:
        """Open a session with self.target and log in if we have credentials."""
        self.client = None
        client = self.client = self.target.connect()
        self.forget_listings()
        if self.login:
            try:
                who = client.login(*self.login)
            except ServerError as exc:
                self.out(describe(exc, tried_login=True) + "; you are not logged in")
            else:
                self.out(f"Logged in as {shown(who)}.")
        return client

    def need(self) -> Client:
        if not self.connected:
            raise NotConnected()
        assert self.client is not None
        try:
            self.client.ensure_alive()
        except ClientError as exc:      # ended while we were idle: open a new session
            idle = isinstance(exc, ServerError) and exc.code == protocol.TIMEOUT
            why = "the session was idle too long" if idle else f"the session ended ({exc})"
            self.out(f"({why}; reconnecting to {self.target.label})")
            self.connect()
        assert self.client is not None
        return self.client

    def leave(self) -> None:
        """End the open session, if any, with a QUIT."""
        if self.client is not None and not self.client.closed:
            self.client.__exit__(None, None, None)

    def lost(self, reason: str) -> None:
        self.client = None
        self.err(f"{reason}\nThe connection to {self.target.label} is closed; "
                 f"type 'open {self.target.label}' to reconnect.")

    def recover(self) -> None:
        """After Ctrl-C the session may be mid-reply: replace it with a fresh one."""
        if self.client is None:
            return
        self.client.close()
        try:
            self.connect()
            self.out(f"(reconnected to {self.target.label})")
        except ClientError as exc:
            self.lost(str(exc))

    def bar(self) -> Callable:
        return rate_limited(bar_for(self.quiet), self.limit_rate)

    def do_rate(self, arg: str) -> None:
        """rate [RATE]: show or set the transfer limit in bytes per second, both
        directions (K, M, G suffixes; 0: unlimited), like --limit-rate."""
        if arg.strip():
            try:
                self.limit_rate = parse_size(arg)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        self.out(f"rate limit: {self.limit_rate or 'unlimited'}"
                 + (" bytes/s" if self.limit_rate else ""))

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        self.load_history()
        intro = f"Connected to {self.target.label}: {shown(self.client.greeting)}\n{MENU}" \
            if self.client else MENU
        try:
            while True:
                try:
                    self.cmdloop(intro)
                    return 0
                except KeyboardInterrupt:     # Ctrl-C at the prompt: a fresh line
                    self.out("")
                    intro = ""
        finally:
            self.save_history()
            self.leave()

    def onecmd(self, line: str) -> bool:
        try:
            stop = super().onecmd(line)
        except (Exception, KeyboardInterrupt) as exc:
            self.status = self.report(exc)
            return self.batch and self.status != EX_OK      # a script stops at a failure
        self.status = EX_OK
        return stop

    def report(self, exc: BaseException) -> int:
        """Say what went wrong in one sentence, mend the session where it can
        be mended, and return the exit status the failure stands for."""
        if isinstance(exc, Unfinished):      # what failed was said already
            return exc.status
        if isinstance(exc, NotConnected):
            self.err(f"Not connected; type 'open {self.target.label}' to connect.")
            return EX_CONNECTION
        status = EX_USAGE if isinstance(exc, UsageError) else exit_status(exc)
        if status is None:
            raise exc
        if isinstance(exc, ServerError):
            self.err(describe(exc, self.login is not None))
            if self.client is not None and self.client.closed:
                self.lost("The server ended the session.")
        elif isinstance(exc, ConnectionLost):
            self.lost(str(exc))
        elif isinstance(exc, (Cancelled, KeyboardInterrupt)):
            self.err(str(exc) if isinstance(exc, Cancelled) else "Interrupted.")
            self.recover()
        elif isinstance(exc, (ValueError, OSError)):  # unbalanced quotes, lcd to nowhere...
            self.err(f"error: {exc}")
        else:
            self.err(message(exc))
            if self.client is not None and self.client.closed:
                self.recover()      # a download broke off locally: its data was in flight
        return status

    def emptyline(self) -> bool:
        return False           # cmd.Cmd would repeat the last command: surprising

    def default(self, line: str) -> NoReturn:
        raise UsageError(f"Unknown command {line.split()[0]!r}; type 'help' for the list.")

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: the command list, or how to use one command."""
        name = arg.strip()
        if not name:
            self.out(MENU)
            return
        method = getattr(self, f"do_{name}", None)
        if method is None or not method.__doc__:
            self.out(f"No command {name!r}; type 'help' for the list.")
        else:
            self.out(inspect.cleandoc(method.__doc__))

    # -- remote commands -------------------------------------------------------------------

    def do_ls(self, arg: str) -> None:
        """ls [PATH]: list a remote directory (size, local time, name; a
        directory has a / after its name), the current one without PATH."""
        words, _ = split_args(arg, "ls [PATH]", 0, 1)
        entries = self.need().list(self.rdir.resolve(words[0] if words else ".") or None)
        self.out("\n".join(listing_table(entries)))

    do_list = do_ls

    def do_get(self, arg: str) -> None:
        """get [-r] [--force] [--continue] [--no-verify] NAME [LOCAL]: download NAME.

        It is saved as LOCAL (or into the directory LOCAL), else as NAME here,
        only once complete and its SHA-256 matches the server's. --force
        replaces an existing file; --continue resumes a cut download (or an
        existing shorter file, as wget -c). With -r NAME is a directory,
        downloaded whole to LOCAL (default: its name); files already here
        and identical are skipped. Ctrl-C stops after the current file."""
        usage = "get [-r] [--force] [--continue] [--no-verify] NAME [LOCAL]"
        words, flags = split_args(arg, usage, 1, 2, GET_FLAGS)
        if "recursive" in flags:
            self.get_tree(words, flags)
            return
        options = GetOptions("force" in flags, "resume" in flags, "no_verify" not in flags)
        remote = self.rdir.resolve(words[0])
        target = local_target(remote, words[1] if len(words) > 1 else None)
        outcome = download(self.need(), remote, target, options, self.bar())
        self.out(transfer_summary("Saved", outcome.path, outcome.size, outcome.sha256,
                                  outcome.resumed_from))

    def do_put(self, arg: str) -> None:
        """put [-r] [--force] [--continue] LOCAL [NAME]: upload a local file, as NAME if given.

        Its SHA-256 travels with it, so the server stores it only if it
        arrived intact; until then the old file of that name stays as it
        was. With --continue the upload is resumable: after a cut, the same
        command sends only what the server lacks. With -r LOCAL is a
        directory, uploaded whole; files already on the server and identical
        are skipped, others replaced with --force."""
        words, flags = split_args(arg, "put [-r] [--force] [--continue] LOCAL [NAME]", 1, 2,
                                  PUT_FLAGS)
        if "recursive" in flags:
            self.put_tree(words, flags)
            return
        name = words[1] if len(words) > 1 else os.path.basename(os.path.normpath(words[0]))
        outcome = upload(self.need(), words[0], self.rdir.resolve(name), self.bar(),
                         resume="resume" in flags)
        self.forget_listings()
        self.out(transfer_summary("Stored", outcome.path, outcome.size, outcome.sha256))

    def do_hash(self, arg: str) -> None:
        """hash NAME: the size and SHA-256 of a file on the server."""
        words, _ = split_args(arg, "hash NAME", 1, 1)
        size, digest = self.need().hash(self.rdir.resolve(words[0]))
        self.out(f"{digest}  {words[0]}  ({human_size(size)})")

    def do_login(self, arg: str) -> None:
        """login USER: log in; the password is asked without echo."""
        words, _ = split_args(arg, "login USER", 1, 1)
        client = self.need()
        password = getpass.getpass(f"Password for {words[0]}: ")
        who = client.login(words[0], password)
        self.login = (words[0], password)
        self.out(f"Logged in as {shown(who)}.")

    def do_open(self, arg: str) -> None:
        """open HOST[:PORT]: connect to a server (the current one is left)."""
        words, _ = split_args(arg, "open HOST[:PORT]", 0, 1)
        target = self.target.with_address(words[0]) if words else self.target
        self.leave()
        if target.host != self.target.host:
            self.login = resolve_login(target.host, None)
        self.target = target
        client = self.connect()
        self.out(f"Connected to {target.label}: {shown(client.greeting)}")

    # -- local commands ---------------------------------------------------------------------

    def do_lcd(self, arg: str) -> None:
        """lcd [DIR]: change the local directory (home without DIR)."""
        words, _ = split_args(arg, "lcd [DIR]", 0, 1)
        os.chdir(os.path.expanduser(words[0] if words else "~"))
        self.out(f"Local directory: {os.getcwd()}")

    def do_lls(self, arg: str) -> None:
        """lls: list the local directory."""
        split_args(arg, "lls", 0, 0)
        entries = []
        with os.scandir(".") as found:
            for item in found:
                if not item.name.startswith("."):
                    info = item.stat()
                    is_dir = item.is_dir()
                    entries.append(Entry(item.name, None if is_dir else info.st_size,
                                         int(info.st_mtime), is_dir))
        self.out(f"{os.getcwd()}:\n" + "\n".join(listing_table(entries)))

    def do_quit(self, arg: str) -> bool:
        """quit (or exit, or Ctrl-D): leave ftpc."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:   # noqa: N802 (cmd.Cmd's name for Ctrl-D)
        """Ctrl-D: leave ftpc."""
        self.out("")
        return True



def run_shell(target: Target, login: Optional[Tuple[str, str]], quiet: bool = False,
              limit_rate: int = 0) -> int:
    """ftpc without a command. Exit 3 if the first connection fails, else 0."""
    shell = Shell(target, login, quiet)
    shell.limit_rate = limit_rate
    failed = first_connect(shell)
    return failed if failed is not None else shell.run()


def first_connect(shell: Shell) -> Optional[int]:
    try:
        shell.connect()
    except (ConnectionLost, ServerError) as exc:
        print(f"ftpc: {terminal_lines(message(exc, shell.login is not None))}",
              file=sys.stderr)
        return exit_status(exc)
    return None
