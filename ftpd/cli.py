"""Command lines of `ftpd`; the only place exceptions become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ftpd import __version__, config as config_mod
from ftpd.config import EX_CONFIG, ConfigError
from ftpd.server.daemon import DaemonError, NotRunning
from ftpd.server.listeners import BindError
from ftpd.server.systemd import ActivationError

# sysexits(3), as os names them; the one exception is status's LSB code.
EX_OK = os.EX_OK
EX_USAGE = os.EX_USAGE
EX_DATAERR = os.EX_DATAERR
EX_UNAVAILABLE = os.EX_UNAVAILABLE
EX_OSERR = os.EX_OSERR
EX_NOT_RUNNING = 3      # LSB: "program is not running"

COMMANDS = ("serve", "check", "status", "passwd")


def _server_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--listen", metavar="ADDR", default=default,
                        help="override [server] listen (host:port[,host:port...])")
    parser.add_argument("--root", metavar="DIR", default=default,
                        help="override [server] root (the library directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftpd", description="ftpd: a fork-per-client LAN file server (FTPD/1).",
        epilog="Settings (see etc/ftpd.conf):\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", metavar="PATH",
                        help="config file (else $FTPD_CONFIG, else /etc/ftpd/ftpd.conf "
                             "if it exists, else built-in defaults)")
    parser.add_argument("--version", action="version", version=f"ftpd {__version__}")
    _server_options(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server in the foreground (default)")
    _server_options(serve, argparse.SUPPRESS)
    serve.add_argument("--daemon", action="store_true",
                       help="detach from the terminal (python-daemon); log to [log] file")
    commands.add_parser("check", help="validate the config and exit (0, or 78)")
    status = commands.add_parser("status", help="show the running server and its sessions "
                                 "(exit 3 if not running)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    passwd = commands.add_parser(
        "passwd", help="create or update an account in [access] users_file "
        "(password twice from a terminal, or one line on stdin)")
    passwd.add_argument("user", metavar="USER", nargs="?")
    passwd.add_argument("--access", choices=("read", "write"),
                        help="what the account may do (new accounts: read)")
    passwd.add_argument("--home", metavar="PATH",
                        help="the account's directory below the library, made at its first "
                        "login; '' or / for the whole library (new accounts: the whole library)")
    passwd.add_argument("--delete", action="store_true", help="remove the account")
    _limit_options(passwd)
    return parser


def _limit_options(passwd: argparse.ArgumentParser) -> None:
    size = _size_option
    passwd.add_argument("--max-rate", metavar="RATE", type=size,
                        help="bytes per second for each of its sessions, both directions "
                        "(K, M, G; 0: unlimited; default: [files] max_rate)")
    passwd.add_argument("--quota", metavar="SIZE", type=size,
                        help="most bytes its home may hold (K, M, G, T; 0: no quota)")
    passwd.add_argument("--max-files", metavar="N", type=int,
                        help="most files its home may hold (0: no limit)")
    passwd.add_argument("--list", action="store_true",
                        help="list the accounts with their limits and usage")


def _size_option(text: str) -> int:
    try:
        return config_mod.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_help() -> str:
    return "\n".join(f"  [{s.section}] {s.key} = {s.default}\n      {s.help}"
                     for s in config_mod.SETTINGS)


def overrides_from(args: argparse.Namespace) -> Dict[Tuple[str, str], str]:
    found = {}
    if getattr(args, "listen", None):
        found[("server", "listen")] = args.listen
    if getattr(args, "root", None):
        found[("server", "root")] = args.root
    return found


def cmd_check(args: argparse.Namespace) -> int:
    from ftpd.server import preflight

    located = config_mod.locate(args.config)
    # Absolute, as `ftpd serve` names it (it reloads after chdir /).
    cfg = config_mod.load(os.path.abspath(located) if located else None, overrides_from(args))
    report = preflight.run(cfg)         # exactly what `ftpd serve` runs before it binds
    for warning in report.warnings:
        print(f"ftpd: warning: {warning}", file=sys.stderr)
    print(f"{cfg.source}: ok ({report.guard.describe()})")
    return EX_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ftpd.server import service
    return service.serve(args.config, overrides_from(args), detach=getattr(args, "daemon", False))


def cmd_status(args: argparse.Namespace) -> int:
    from ftpd.server import status
    print(status.status(config_mod.load(args.config, overrides_from(args)), as_json=args.json))
    return EX_OK


def cmd_passwd(args: argparse.Namespace) -> int:
    from ftpd.server import auth

    cfg = config_mod.load(args.config, overrides_from(args))
    path = cfg.access.users_file
    if not path:
        raise ConfigError("is not set: nowhere to store accounts", cfg.source,
                          "access", "users_file")
    try:
        if args.list:
            from ftpd.server import accounts_report
            print(accounts_report.describe(path, cfg.server.root))
            return EX_OK
        if args.user is None:
            raise auth.AuthError("a USER is needed (or --list)")
        if args.delete:
            auth.delete_user(path, args.user)
            print(f"deleted {args.user} from {path}")
        else:
            auth.check_user_name(args.user)
            if args.home is not None:
                auth.check_home(args.home)      # before asking for a password
            limits = {key: value for key, value in (("max_rate", args.max_rate),
                      ("quota", args.quota), ("max_files", args.max_files)) if value is not None}
            # Only limits for an existing account: its password stays.
            keep = bool(limits) and args.access is None and args.home is None \
                and auth.find_user(path, args.user) is not None
            login = auth.set_password(path, args.user, None if keep else auth.read_password(),
                                      args.access, args.home, limits)
            print(f"{args.user} ({login.access}, home /{login.home}) saved in {path}")
    except auth.AuthError as exc:
        print(f"ftpd passwd: {exc}", file=sys.stderr)
        return EX_DATAERR
    return EX_OK


HANDLERS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "check": cmd_check,
    "status": cmd_status,
    "passwd": cmd_passwd,
}


# What each failure means to the caller: (exception types, exit status, prefix).
FAILURES = (
    ((ConfigError, ActivationError), EX_CONFIG, "config error: "),
    ((NotRunning,), EX_NOT_RUNNING, ""),
    ((DaemonError, BindError), EX_UNAVAILABLE, ""),
    ((OSError,), EX_OSERR, ""),
)


def ftpd_main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    try:
        return HANDLERS[command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        for types, code, prefix in FAILURES:
            if isinstance(exc, types):
                print(f"ftpd: {prefix}{exc}", file=sys.stderr)
                return code
        raise
