"""`ftpd check` is the pre-flight of `ftpd serve`: what start fails on, check
fails on, with the same message and exit status (78, naming file, section
and key); warnings come out of both."""

import signal
import subprocess
import sys

import pytest

from tests.harness import (PROJECT, ftpd_argv, project_env, run_ftpd, wait_until,
                           write_config)


def check(path, *args, env=None):
    return run_ftpd("-c", str(path), *args, "check", env=env)


def serve(path, *args, env=None, cwd=None):
    """`ftpd serve` that is expected to refuse to start (a hang fails the test)."""
    return run_ftpd("-c", str(path), *args, "serve", env=env, cwd=cwd, timeout=30)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if "config error" in line]


def test_a_good_config_passes(tmp_path):
    (tmp_path / "run").mkdir()
    conf = write_config(tmp_path / "ftpd.conf", {
        "server": {"listen": "127.0.0.1:8021", "pidfile": tmp_path / "run" / "ftpd.pid",
                   "root": tmp_path},
        "log": {"level": "debug", "transfer_log": tmp_path / "transfer.log"}})
    result = check(conf)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{conf}: ok")
    assert not (tmp_path / "transfer.log").exists()     # check creates nothing


@pytest.mark.parametrize("text, where", [
    ("[server]\nmax_clients = many\n", ": [server] max_clients: 'many' is not a whole number"),
    ("[server]\nlisten_on = 1.2.3.4:21\n", ":2: [server] listen_on: unknown key"),
    ("[srv]\nlisten = 127.0.0.1:1\n", ":1: [srv]: unknown section"),
    ("[log]\nlevel = loud\n", ": [log] level: 'loud' is not one of"),
    ("[server]\nlisten = nowhere\n", ": [server] listen: 'nowhere' is not host:port"),
])
def test_errors_exit_78_and_name_file_section_key(tmp_path, text, where):
    conf = tmp_path / "ftpd.conf"
    conf.write_text(text)
    result = check(conf)
    assert result.returncode == 78
    assert f"{conf}{where}" in result.stderr


def test_a_missing_file_exits_78(tmp_path):
    result = check(tmp_path / "absent.conf")
    assert result.returncode == 78
    assert "absent.conf: cannot read" in result.stderr


# Each case: settings (root is tmp_path unless given), extra arguments, the
# environment, and what the one error line must say.
PREFLIGHT = {
    "log file in a missing directory": (
        {"log": {"file": "{tmp}/nowhere/ftpd.log"}}, [], None,
        "[log] file: cannot open {tmp}/nowhere/ftpd.log: No such file or directory"),
    "transfer log that is a directory": (
        {"log": {"transfer_log": "{tmp}"}}, [], None,
        "[log] transfer_log: cannot open {tmp}: Is a directory"),
    "pidfile directory missing": (
        {"server": {"pidfile": "{tmp}/run/ftpd.pid"}}, [], None,
        "[server] pidfile: directory {tmp}/run does not exist"),
    "listen host that does not resolve": (
        {"server": {"listen": "nohost.invalid:8021"}}, [], None,
        "[server] listen: nohost.invalid does not resolve"),
    "listen address this host does not have": (
        {"server": {"listen": "192.0.2.1:8021"}}, [], None,
        "[server] listen: 192.0.2.1:8021: cannot listen on 192.0.2.1: "
        "Cannot assign requested address"),
    "port 0": (
        {"server": {"listen": "127.0.0.1:0"}}, [], {"FTPD_ALLOW_PORT_0": ""},
        "[server] listen: 127.0.0.1:0: port 0 makes the kernel pick a different port"),
    "root that does not exist": (
        {"server": {"root": "{tmp}/libary"}}, [], None,
        "[server] root: {tmp}/libary does not exist (only the built-in default "
        "./library is created)"),
    "root on the command line that does not exist": (
        {}, ["--root", "{tmp}/libary"], None,
        "command line: [server] root: {tmp}/libary does not exist"),
}


@pytest.mark.parametrize("case", list(PREFLIGHT))
def test_check_fails_where_serve_fails_with_the_same_message(tmp_path, case):
    settings, args, env, expected = PREFLIGHT[case]
    tmp = str(tmp_path)
    merged = {"server": {"listen": "127.0.0.1:8021", "root": tmp}}
    for section, values in settings.items():
        merged.setdefault(section, {}).update(
            {key: value.replace("{tmp}", tmp) for key, value in values.items()})
    conf = write_config(tmp_path / "ftpd.conf", merged)
    args = [arg.replace("{tmp}", tmp) for arg in args]
    checked, served = check(conf, *args, env=env), serve(conf, *args, env=env)
    assert checked.returncode == served.returncode == 78, (checked.stderr, served.stderr)
    assert error_lines(checked) == error_lines(served) and len(error_lines(checked)) == 1
    assert expected.replace("{tmp}", tmp) in error_lines(checked)[0]
    assert "Traceback" not in checked.stderr + served.stderr
    assert not (tmp_path / "libary").exists() and not (tmp_path / "nowhere").exists()


def test_the_built_in_default_library_is_still_created(tmp_path):
    conf = write_config(tmp_path / "ftpd.conf", {"server": {"listen": "127.0.0.1:0"}})
    assert check(conf).returncode == 0
    assert not (tmp_path / "library").exists()          # check only looks
    log = tmp_path / "ftpd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(ftpd_argv("-c", str(conf)), cwd=tmp_path, env=project_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_until(lambda: "ftpd serving" in log.read_text(), what="the server")
        assert (tmp_path / "library").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_no_accounts_and_no_anonymous_is_a_warning_on_check_and_at_start(make_daemon, tmp_path):
    missing = tmp_path / "users"
    daemon = make_daemon({"access": {"anonymous": "none", "users_file": missing}})
    warning = f"[access] anonymous = none and [access] users_file {missing} does not exist"
    result = check(daemon.config_path)
    assert result.returncode == 0, result.stderr
    assert f"ftpd: warning: {daemon.config_path}: {warning}" in result.stderr
    assert "nobody can log in" in result.stderr
    wait_until(lambda: f"WARNING {daemon.config_path}: {warning}" in daemon.log(),
               what="the warning at start")


# Socket activation without systemd: the launcher keeps its pid into the
# exec, so LISTEN_PID names ftpd, and puts the socket at fd 3.
WITH_FD3 = ("import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); fd == 3 or os.close(fd); "
            "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
            "os.execv(sys.argv[2], sys.argv[2:])")


@pytest.mark.parametrize("listen, level", [(None, "INFO"), ("127.0.0.1:8021", "WARNING")])
def test_socket_activation_says_listen_is_ignored(tmp_path, listen, level):
    import socket
    server = {"root": tmp_path} if listen is None else {"root": tmp_path, "listen": listen}
    conf = write_config(tmp_path / "ftpd.conf", {"server": server})
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    log = tmp_path / "ftpd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WITH_FD3, str(sock.fileno()),
                                 *ftpd_argv("-c", str(conf))], pass_fds=[sock.fileno()],
                                cwd=PROJECT, env=project_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    sock.close()
    try:
        wait_until(lambda: "ftpd serving" in log.read_text(), what="the server")
        lines = [line for line in log.read_text().splitlines() if "socket activation" in line]
        assert len(lines) == 1
        assert f"{level} socket activation: serving on 127.0.0.1:{port} from systemd; " \
               "[server] listen (127.0.0.1:8021) is ignored" in lines[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_a_reload_to_a_root_that_does_not_exist_is_refused(make_daemon, tmp_path):
    daemon = make_daemon()
    daemon.settings["server"]["root"] = tmp_path / "libary"
    daemon.write_config()
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in daemon.log(), what="the refused reload")
    assert f"[server] root: {tmp_path / 'libary'} does not exist" in daemon.log()
    assert not (tmp_path / "libary").exists()
    with daemon.client() as client:         # still serving the old library
        client.list()
