"""The docs' hand-typed sessions, followed literally: README's "Talking to it
by hand" typed into the real `nc` (pexpect, a terminal like a person's) and
deployment.md's "Try it" line run through a shell against the shipped
etc/ftpd.conf. Every reply must be the one the doc shows; only the port is
the test daemon's and an `L` row's mtime is matched as a number."""

import configparser
import re
import shlex
import shutil
import subprocess

import pexpect
import pytest

from tests.functional.test_homes import users_file
from tests.harness import PROJECT

pytestmark = pytest.mark.skipif(shutil.which("nc") is None,
                                reason="no nc (netcat-openbsd; .ci/run installs it)")

DOC_PORT = "8021"
LISTING_ROW = re.compile(r"(-|\d+) (\d+) (\S+)\Z")


def section(path, heading):
    """The text under a markdown heading, up to the next heading."""
    text = path.read_text(encoding="utf-8")
    assert heading in text, f"{path.name} has no {heading!r}"
    return re.split(r"\n#+ ", text.split(heading, 1)[1], maxsplit=1)[0]


def indented_blocks(text):
    """The indented (code) blocks of a markdown text, each a list of lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("    "):
            current.append(line[4:])
        elif current and line.strip():
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def on_port(command, port):
    assert f" {DOC_PORT}" in command, command
    return command.replace(f" {DOC_PORT}", f" {port}")


def readme_walkthrough():
    """(the nc command line, [(">" or "<", text), ...]) from README.md."""
    text = section(PROJECT / "README.md", "## Talking to it by hand")
    command = re.search(r"`(nc [^`]*)`", text).group(1)
    [steps] = [block for block in indented_blocks(text) if block[0].startswith("< ")]
    assert all(line[:2] in ("> ", "< ") for line in steps), steps
    return command, [(line[0], line[2:]) for line in steps]


def same_reply(shown, got, listing):
    """Equal, but in an `L` answer's rows any mtime stands for the shown one."""
    row = LISTING_ROW.match(shown)
    if listing and row:
        return re.fullmatch(rf"{re.escape(row[1])} \d+ {re.escape(row[3])}", got) is not None
    return got == shown


def test_readme_nc_walkthrough_gives_exactly_the_shown_replies(daemon):
    command, steps = readme_walkthrough()
    argv = shlex.split(on_port(command, daemon.port))
    # echo off: the terminal shows only what the server sends, as in the README.
    child = pexpect.spawn(argv[0], argv[1:], echo=False, encoding="utf-8", timeout=10)
    listing = False
    try:
        for kind, text in steps:
            if kind == ">":
                child.sendline(text)          # typed, then Enter: the terminal sends LF
                listing = text.split(" ")[0] == "L"
                continue
            got = child.readline().rstrip("\r\n")
            assert same_reply(text, got, listing), f"README shows {text!r}, nc showed {got!r}"
        child.sendeof()                       # Ctrl-D: the README's way out of nc
        child.expect(pexpect.EOF)
        assert child.before == "", f"nc showed more than the README: {child.before!r}"
    finally:
        child.close(force=True)
    assert (daemon.root / "archive" / "hello.txt").read_bytes() == b"hello world\n"
    assert not (daemon.root / "notes").exists()


def shipped_settings(tmp_path):
    """etc/ftpd.conf as shipped, but for the machine's own paths and the port."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PROJECT / "etc" / "ftpd.conf", encoding="utf-8")
    settings = {name: dict(parser[name]) for name in parser.sections()}
    assert settings["access"]["anonymous"] == "none"     # what the doc's answer relies on
    settings["server"].update(listen="127.0.0.1:0", root=tmp_path / "srv", pidfile="",
                              user="", group="")
    # The account from deployment.md's step 3, so the server has a users file to read.
    settings["access"]["users_file"] = users_file(tmp_path / "users", alice="write:pw-a:")
    settings["log"]["transfer_log"] = tmp_path / "transfer.log"
    return settings


def test_deployment_try_it_answers_what_the_guide_shows(make_daemon, tmp_path):
    text = section(PROJECT / "docs" / "deployment.md", "### 4. Install the units and start")
    after = text.split("Try it:", 1)[1]
    [command], shown = indented_blocks(after)[:2]
    daemon = make_daemon(settings=shipped_settings(tmp_path))
    done = subprocess.run(["sh", "-c", on_port(command, daemon.port)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown
