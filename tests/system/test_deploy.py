"""The deployment pieces, run for real: install.sh into a staging root, and the
logrotate policy against a live daemon (SIGUSR1 reopens its logs)."""

import os
import shutil
import stat
import subprocess

import pytest

from tests.harness import PROJECT, wait_until

LOGROTATE = shutil.which("logrotate")


@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")
@pytest.mark.skipif(not shutil.which("systemd-sysusers") or not shutil.which("systemctl"),
                    reason="systemd-sysusers/systemctl are not installed")
def test_install_sh_stages_a_complete_service(tmp_path):
    root = tmp_path / "stage"
    (root / "etc" / "ftpd").mkdir(parents=True)
    kept = "[server]\nroot = /srv/ftpd\npidfile = /run/ftpd/ftpd.pid\n"
    (root / "etc" / "ftpd" / "ftpd.conf").write_text(kept)     # an admin's config stays
    result = subprocess.run(["sh", str(PROJECT / "deploy" / "install.sh")],
                            env=dict(os.environ, ROOT=str(root)), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keeping the existing" in result.stdout
    assert (root / "etc" / "ftpd" / "ftpd.conf").read_text() == kept

    user = [line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
            if line.startswith("ftpd:")]
    assert user and user[0][5:] == ["/srv/ftpd", "/usr/sbin/nologin"]
    library = (root / "srv" / "ftpd").stat()
    assert stat.S_IMODE(library.st_mode) == 0o770 and library.st_uid == int(user[0][2])
    system = root / "etc" / "systemd" / "system"
    assert (system / "ftpd.service").read_text() == (PROJECT / "systemd/ftpd.service").read_text()
    assert (system / "multi-user.target.wants" / "ftpd.service").is_symlink()
    assert (system / "sockets.target.wants" / "ftpd.socket").is_symlink()     # Also=
    assert (root / "etc" / "logrotate.d" / "ftpd").exists()
    program = root / "opt" / "ftpd" / "bin" / "ftpd"
    assert subprocess.run([str(program), "--version"], capture_output=True,
                          timeout=60).returncode == 0
    assert os.readlink(root / "usr" / "local" / "bin" / "ftpd") == "/opt/ftpd/bin/ftpd"


@pytest.mark.skipif(LOGROTATE is None, reason="logrotate is not installed")
def test_logrotate_policy_rotates_and_the_daemon_reopens(make_daemon, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    pidfile = tmp_path / "ftpd.pid"
    daemon = make_daemon(start=False, settings={
        "server": {"pidfile": pidfile}, "log": {"transfer_log": logs / "transfer.log"}})
    daemon.log_path = logs / "ftpd.log"          # the harness reads the server's log file
    daemon.settings["log"]["file"] = daemon.log_path
    daemon.start()
    policy = (PROJECT / "deploy" / "logrotate.d" / "ftpd").read_text()
    policy = policy.replace("/var/log/ftpd", str(logs)).replace("/run/ftpd/ftpd.pid",
                                                                str(pidfile))
    policy = policy.replace("create 0640 root root", "create 0640")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(policy)
    conf.chmod(0o644)
    (daemon.root / "a.txt").write_bytes(b"a")
    with daemon.client() as client:
        client.get("a.txt", str(tmp_path / "a1"))

    result = subprocess.run([LOGROTATE, "-f", "-s", str(tmp_path / "state"), str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (logs / "ftpd.log.1").exists() and (logs / "transfer.log.1").exists()
    wait_until(lambda: "log files reopened" in daemon.log_path.read_text(),
               what="the daemon to reopen after postrotate")
    with daemon.client() as client:
        client.get("a.txt", str(tmp_path / "a2"))
    wait_until(lambda: " G a.txt 1 " in (logs / "transfer.log").read_text(),
               what="the next transfer in the new transfer log")
    assert len((logs / "transfer.log.1").read_text().splitlines()) == 1
