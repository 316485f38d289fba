"""The deployment pieces, run for real: install.sh into a staging root, and the
logrotate policy against a live daemon (SIGUSR1 reopens its logs)."""

import os
import re
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
    assert_programs_pages_and_completion(root)


def assert_programs_pages_and_completion(root):
    """ftpc next to ftpd on the PATH; man pages and completion rendered from the code."""
    local = root / "usr" / "local"
    assert os.readlink(local / "bin" / "ftpc") == "/opt/ftpd/bin/ftpc"
    for page in ("man8/ftpd.8", "man5/ftpd.conf.5", "man1/ftpc.1"):
        assert (local / "share" / "man" / page).read_text().startswith(".\\\" Generated")
    for program in ("ftpd", "ftpc"):
        assert (local / "share/bash-completion/completions" / program).read_text() == \
            (PROJECT / "completion" / f"{program}.bash").read_text()
        assert (local / "share/zsh/site-functions" / f"_{program}").read_text() == \
            (PROJECT / "completion" / f"_{program}").read_text()


def run_install_sh(root, *args, env=None):
    result = subprocess.run(["sh", str(PROJECT / "deploy" / "install.sh"), *args],
                            env=dict(os.environ, ROOT=str(root), **(env or {})),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.timeout(900)
@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")
@pytest.mark.skipif(not shutil.which("systemd-sysusers") or not shutil.which("systemctl"),
                    reason="systemd-sysusers/systemctl are not installed")
def test_install_sh_offline_from_wheels_then_uninstall(tmp_path):
    from tests.system.deploy.image import build_wheels

    wheels = build_wheels(tmp_path / "wheels", tmp_path / "wheels.log")
    root = tmp_path / "stage"
    # No index reachable and no pip config: only --wheels can supply psutil & co.
    offline = {"PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
               "PIP_FIND_LINKS": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run_install_sh(root, "--wheels", str(wheels), env=offline)
    program = root / "opt" / "ftpd" / "bin" / "ftpd"
    assert subprocess.run([str(program), "--version"], capture_output=True,
                          timeout=60).returncode == 0
    assert_programs_pages_and_completion(root)
    (root / "srv" / "ftpd" / "kept.txt").write_text("a user's file")

    result = run_install_sh(root, "--uninstall")
    assert "Kept: /etc/ftpd" in result.stdout
    gone = ["opt/ftpd", "usr/local/bin/ftpd", "usr/local/bin/ftpc",
            "etc/systemd/system/ftpd.service", "etc/systemd/system/ftpd.socket",
            "etc/systemd/system/multi-user.target.wants/ftpd.service",
            "etc/systemd/system/sockets.target.wants/ftpd.socket",
            "etc/logrotate.d/ftpd", "usr/local/share/man/man8/ftpd.8",
            "usr/local/share/bash-completion/completions/ftpd",
            "usr/local/share/zsh/site-functions/_ftpc"]
    assert [rel for rel in gone if os.path.lexists(root / rel)] == []
    # What is the admin's stays: the config, the library with its files, the user.
    assert (root / "etc" / "ftpd" / "ftpd.conf").read_text() == \
        (PROJECT / "etc" / "ftpd.conf").read_text()
    assert (root / "srv" / "ftpd" / "kept.txt").read_text() == "a user's file"
    assert "\nftpd:" in "\n" + (root / "etc" / "passwd").read_text()


def test_install_sh_rejects_unknown_arguments():
    result = subprocess.run(["sh", str(PROJECT / "deploy" / "install.sh"), "--frobnicate"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown argument: --frobnicate" in result.stderr and "--uninstall" in result.stderr


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


DOCS = [PROJECT / "SECURITY.md", PROJECT / "README.md", PROJECT / "debian" / "README.Debian",
        *sorted((PROJECT / "docs").glob("*.md"))]


def test_docs_agree_with_tmpfiles_and_sysusers_on_the_library_and_user():
    tmpfiles = (PROJECT / "deploy/tmpfiles.d/ftpd.conf").read_text()
    mode = re.search(r"^d /srv/ftpd +(\d+) ftpd ftpd", tmpfiles, re.M).group(1)
    creations, useradds = [], []
    for doc in DOCS:
        text = " ".join(doc.read_text().split())        # commands wrapped over lines
        creations += [(doc.name, m) for m in re.findall(r"install -d [^`\n]*?/srv/ftpd", text)]
        useradds += [(doc.name, m) for m in re.findall(r"useradd [^`\n]*? ftpd\b", text)]
    assert creations and useradds
    for name, command in creations:
        assert f"-m {mode}" in command, (name, command)
    sysusers = (PROJECT / "deploy/sysusers.d/ftpd.conf").read_text()
    home = re.search(r'^u ftpd \S+ "[^"]*" (\S+) (\S+)', sysusers, re.M).groups()
    for name, command in useradds:
        assert f"--home-dir {home[0]}" in command and f"--shell {home[1]}" in command, \
            (name, command)
        assert "--user-group" in command, (name, command)


def test_docs_never_stop_the_service_alone():
    """`systemctl stop ftpd` is undone by the socket at the next connection.
    (docs/deploy-test.md describes a test that stops the service alone on purpose.)"""
    for doc in (doc for doc in DOCS if doc.name != "deploy-test.md"):
        for line in doc.read_text().splitlines():
            # A command line of a code block (prose may name the pitfall).
            assert not re.match(r" {4,}systemctl stop ftpd(\.service)?\s*($|#)", line), \
                (doc.name, line)
