"""The interactive ftpc shell, driven through a pseudo-terminal like a person would."""

from __future__ import annotations

import io
import os
import re

import pexpect
import psutil
import pytest

from tests.harness import closed_port, fork_only, wait_until

from tests.ftpc_util import Relay, ftpc_command, ftpc_env, make_file

TIMEOUT = 30


class Screen:
    """One ftpc shell on a pty; `screen` is everything it printed so far."""

    def __init__(self, address: str, home, *args: str):
        command = ftpc_command(*args, address)
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(command[0], command[1:], cwd=str(home), env=ftpc_env(home),
                                   encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 160))
        self.child.logfile_read = self.transcript
        self.prompt = re.escape(f"ftpc {address}> ")

    @property
    def screen(self) -> str:
        return self.transcript.getvalue()

    def wait_prompt(self) -> str:
        self.child.expect(self.prompt)
        return self.child.before

    def run(self, line: str) -> str:
        """Type a command and return what it printed before the next prompt."""
        self.child.sendline(line)
        return self.wait_prompt()

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def shell(daemon, home):
    screens = []

    def open_shell(address=None, *args):
        screen = Screen(address or f"127.0.0.1:{daemon.port}", home, *args)
        screens.append(screen)
        screen.wait_prompt()
        return screen

    yield open_shell
    for screen in screens:
        screen.close()


def test_greeting_menu_listing_and_quit(daemon, shell):
    make_file(daemon.root / "b.bin", 2048)
    make_file(daemon.root / "a file.txt", 10)
    sh = shell()
    assert "FTPD/1" in sh.screen and "Commands:" in sh.screen
    assert "get NAME [LOCAL]" in sh.screen and "help [COMMAND]" in sh.screen
    listing = sh.run("ls").splitlines()
    names = [line.rsplit("  ", 1)[-1] for line in listing if re.search(r"\d{2}:\d{2}  ", line)]
    assert names == ["a file.txt", "b.bin"]
    assert "2 files, 2.0 KiB total" in listing[-1]
    sh.child.sendline("quit")
    sh.child.expect(pexpect.EOF)
    sh.child.close()
    assert sh.child.exitstatus == 0


def test_help_errors_and_the_shell_goes_on(daemon, shell):
    make_file(daemon.root / "there.txt", 3)
    sh = shell()
    assert "--continue" in sh.run("help get")
    assert "Unknown command 'frob'" in sh.run("frob")
    refused = sh.run("get missing.txt")
    assert "no such file" in refused and "code 404" in refused
    assert "No closing quotation" in sh.run('get "unbalanced')
    assert "usage: hash NAME" in sh.run("hash")
    assert "there.txt" in sh.run("ls")                 # still connected and working


def test_tab_completes_remote_names_with_spaces_and_downloads(daemon, shell, home):
    data = make_file(daemon.root / "report 2025.pdf", 5000)
    make_file(daemon.root / "other.txt", 5)
    sh = shell()
    sh.child.send("get rep\t")
    sh.child.expect(re.escape("report\\ 2025.pdf"))
    out = sh.run("")
    assert "Saved report 2025.pdf" in out and "verified" in out
    assert (home / "report 2025.pdf").read_bytes() == data
    sh.child.send('hash "oth\t')
    sh.child.expect(re.escape('"other.txt"'))
    assert "other.txt" in sh.run("") and "5 B" in sh.screen


def test_tab_completes_local_paths_for_put(daemon, shell, home):
    data = make_file(home / "upload me.dat", 7000)
    sh = shell()
    sh.child.send("put upl\t")
    sh.child.expect(re.escape("upload\\ me.dat"))
    assert "Stored upload me.dat" in sh.run("")
    assert (daemon.root / "upload me.dat").read_bytes() == data


def test_progress_bar_on_a_terminal(daemon, shell, home):
    make_file(daemon.root / "big.bin", 2 << 20)
    out = shell().run("get big.bin")
    assert re.search(r"big\.bin: 100%\|.*\| 2\.00M/2\.00M \[", out), out
    assert "B/s]" in out


def test_quiet_one_shot_on_a_terminal_shows_no_bar(daemon, home):
    make_file(daemon.root / "big.bin", 1 << 20)
    for args, bar in (([], True), (["-q"], False)):
        command = ftpc_command(*args, f"127.0.0.1:{daemon.port}", "get", "big.bin", "--force")
        child = pexpect.spawn(command[0], command[1:], cwd=str(home), env=ftpc_env(home),
                              encoding="utf-8", timeout=TIMEOUT)
        output = child.read()
        child.close()
        assert child.exitstatus == 0, output
        assert ("100%|" in output) is bar, output


def test_login_asks_without_echo_and_failure_is_explained(daemon, shell):
    sh = shell()
    sh.child.sendline("login bob")
    sh.child.expect("Password for bob: ")
    out = sh.run("hunter2-secret")
    assert "login failed" in out and "code 401" in out
    assert "hunter2-secret" not in sh.screen
    assert "total" in sh.run("ls")


@fork_only
def test_a_session_ended_while_idle_is_reopened_on_the_next_command(daemon, shell):
    sh = shell()
    sessions = daemon.live_children()
    assert len(sessions) == 1
    for child in sessions:
        child.kill()
    psutil.wait_procs(sessions, timeout=10)
    out = sh.run("ls")
    assert "the session ended" in out and "reconnecting" in out and "0 files" in out
    address = f"127.0.0.1:{daemon.port}"
    assert "Connected to" in sh.run(f"open {address}")
    assert "0 files" in sh.run("ls")


def test_an_idle_timeout_says_so_and_the_next_command_reconnects(make_daemon, home):
    daemon = make_daemon({"server": {"idle_timeout": 0.5}})
    sh = Screen(f"127.0.0.1:{daemon.port}", home)
    try:
        sh.wait_prompt()
        wait_until(lambda: "session end" in daemon.log(), what="the idle session to end")
        out = sh.run("ls")
        assert "the session was idle too long; reconnecting" in out and "0 files" in out
    finally:
        sh.close()


def test_a_connection_lost_mid_command_is_reported_and_open_reconnects(daemon, shell, home):
    make_file(daemon.root / "big.bin", 4 << 20)
    relay = Relay(daemon.port, limit=1 << 20, mode="cut")
    try:
        sh = shell(relay.address)
        offline = re.escape(f"ftpc {relay.address} (not connected)> ")
        sh.child.sendline("get big.bin")
        sh.child.expect(offline)
        assert f"type 'open {relay.address}' to reconnect" in sh.child.before
        assert "partial data kept" in sh.child.before
        sh.child.sendline("ls")
        sh.child.expect(offline)
        assert "Not connected" in sh.child.before
        assert "Connected to" in sh.run(f"open {relay.address}")
        assert "Saved big.bin" in sh.run("get big.bin")
    finally:
        relay.close()


def test_ctrl_c_cancels_a_transfer_and_the_shell_goes_on(daemon, shell, home):
    make_file(daemon.root / "huge.bin", 4 << 20)
    relay = Relay(daemon.port, limit=1 << 20, mode="stall")
    try:
        sh = shell(relay.address)
        sh.child.sendline("get huge.bin")
        assert relay.broken.wait(TIMEOUT)
        sh.child.sendintr()
        out = sh.wait_prompt()
        assert "download cancelled; no partial file left" in out
        assert "reconnected" in out
        assert "huge.bin" in sh.run("ls")
    finally:
        relay.close()
    assert not [n for n in os.listdir(home) if n.startswith((".huge", "huge"))]


def test_history_ctrl_c_at_prompt_local_commands_and_ctrl_d(daemon, shell, home):
    (home / "sub").mkdir()
    make_file(home / "sub" / "local.txt", 42)
    sh = shell()
    assert "Local directory:" in sh.run("lcd sub")
    assert "local.txt" in sh.run("lls")
    sh.child.sendintr()                       # Ctrl-C at the prompt: just a new prompt
    sh.wait_prompt()
    sh.child.sendcontrol("p")                 # previous history line: lls
    sh.child.expect("lls")
    assert "local.txt" in sh.run("")
    sh.child.sendcontrol("d")
    sh.child.expect(pexpect.EOF)
    sh.child.close()
    assert sh.child.exitstatus == 0
    assert (home / ".ftpc_history").read_text().splitlines()[-2:] == ["lcd sub", "lls"]


def test_shell_exits_3_when_the_server_is_unreachable(home):
    with closed_port() as port:
        command = ftpc_command(f"127.0.0.1:{port}")
        child = pexpect.spawn(command[0], command[1:], cwd=str(home), env=ftpc_env(home),
                              encoding="utf-8", timeout=TIMEOUT)
        output = child.read()
        child.close()
    assert child.exitstatus == 3 and "cannot connect" in output


def test_dash_u_prompts_at_start_and_a_failed_login_leaves_the_shell_usable(daemon, home):
    address = f"127.0.0.1:{daemon.port}"
    sh = Screen(address, home, "-u", "bob")
    try:
        sh.child.expect(re.escape("Password for bob@127.0.0.1: "))
        sh.child.sendline("not-shown-pw")
        out = sh.wait_prompt()
        assert "login failed" in out and "not logged in" in out
        assert "not-shown-pw" not in sh.screen
        assert "0 files" in sh.run("ls")
    finally:
        sh.close()
