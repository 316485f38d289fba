"""ftpd under real systemd: a Debian 12 guest in qemu, the host as the LAN client.

The guest is installed from the Debian package built from this checkout
(`apt install ./ftpd_*.deb`) as docs/deployment.md tells an admin (see
conftest.py); at the end it is upgraded to a newer build while a download
runs, and purged; the host reaches it through qemu's forward from a
loopback port to the guest's 8021. The tests share the one guest but pass
in any order: before each, conftest's as_the_guide_leaves_it puts back the
state the guide leaves (package installed, shipped config, units running),
and each test sets up anything more it needs (anonymous uploads, an account,
its own files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ftpd.client import Client, ConnectionLost, ServerError
from tests.system.deploy.helpers import (
    RawSession, SlowSink, cap_mask, cgroup_pids, configure, guest_clock, guide_config,
    journal, main_pid, proc_status, random_file, sha256_of, show,
)
from tests.ftpc_util import ftpc_command
from tests.harness import wait_until
from ftpd import __version__
from tests.functional.test_docs_literal import indented_blocks, section
from tests.system.deploy.conftest import (INSTALL_TIMEOUT, UPGRADE_VERSION, apt_install_command,
                                          ensure_installed, installed_version)
from tests.system.deploy.helpers import GatedSink, start_in_background, wait_background
from tests.system.deploy.image import PROJECT

# One guest for the whole file, booted once: under xdist the file stays on
# one worker, in order (--dist loadfile, see setup.cfg).
pytestmark = pytest.mark.timeout(600)
UNIT = PROJECT / "systemd" / "ftpd.service"


def library_root() -> str:
    return guide_config().get("server", "root", fallback="/srv/ftpd")


def connect(guest, timeout: float = 60.0) -> Client:
    return Client("127.0.0.1", guest.port, timeout=timeout)


def download_in_background(guest, name: str, sink) -> Tuple[threading.Thread, List[Exception]]:
    """`get name` into `sink` in a thread: (the thread, the errors it met)."""
    errors: List[Exception] = []

    def download():
        try:
            with connect(guest, timeout=120) as client:
                client.get(name, sink)
        except Exception as exc:                 # reported by the test, in its thread
            errors.append(exc)
    reader = threading.Thread(target=download)
    reader.start()
    return reader, errors


def accepted(guest) -> bool:
    """True if a new client is served, False if refused with ERR 421 too many clients."""
    try:
        connect(guest).close()
        return True
    except ServerError as exc:
        if exc.code == 421 and "too many clients" in exc.text:
            return False
        raise


def make_writable(guest, scratch: Path) -> None:
    """The admin's first edit: let anonymous upload (the guide ships read-only)."""
    configure(guest, "access", "anonymous", "write")
    probe = scratch / "probe.txt"
    probe.write_bytes(b"probe\n")

    def upload_works():
        try:
            with connect(guest) as client:
                client.put(str(probe))
            return True
        except ServerError as exc:
            if exc.code in (401, 403):
                return False             # the reload has not reached the daemon yet
            raise
    wait_until(upload_works, 60, 0.5, "anonymous uploads after the reload")


def test_install_follows_the_guide(guest):
    guide = (PROJECT / "docs" / "deployment.md").read_text()
    assert "apt install ./ftpd_" in guide, "the guide and the test must install the same way"
    enabled = guest.run("systemctl is-enabled ftpd.service ftpd.socket").out.split()
    assert enabled == ["enabled", "enabled"]
    assert guest.run("systemctl is-active ftpd.service ftpd.socket").out.split() == \
        ["active", "active"]
    assert guest.run("getent passwd ftpd").out.startswith("ftpd:")
    assert guest.run(f"stat -c '%U:%G %a' {library_root()}").out.split() == ["ftpd:ftpd", "770"]
    # The config in place is the guide's, byte for byte, and it checks out.
    guest.run("cmp /etc/ftpd/ftpd.conf /mnt/payload/src/etc/ftpd.conf")
    guest.run("ftpd -c /etc/ftpd/ftpd.conf check")


def test_host_reaches_guest_over_forwarded_port(guest):
    # The guide's step after installing: an account (the shipped config lets
    # nobody in anonymously), which the running server picks up unreloaded.
    guest.run("printf 'guide-pw\\n' | ftpd -c /etc/ftpd/ftpd.conf passwd alice --access write")
    raw = RawSession(guest.port)
    try:
        assert raw.line().startswith("OK FTPD/1 ")
        if guide_config().get("access", "anonymous", fallback="write") == "none":
            assert raw.ask("L").startswith("ERR 401 ")
            assert raw.ask("A alice guide-pw") == "OK alice"
        count = int(raw.ask("L").split()[1])
        for _ in range(count):                   # <size> <mtime> <name>, or - <mtime> <dir>/
            size, mtime, name = raw.line().split(" ")
            assert (size.isdigit() or size == "-" and name.endswith("/")) and mtime.isdigit()
        assert raw.ask("Q") == "OK bye"
    finally:
        raw.close()
    if guide_config().get("access", "anonymous", fallback="write") != "write":
        with connect(guest) as client:   # the guide's config: anonymous may not upload
            with pytest.raises(ServerError) as refused:
                client.request("P", "nope.txt", "1")
            assert refused.value.code in (401, 403)


def test_reload_applies_the_admins_edit(guest, scratch):
    since = guest_clock(guest)
    pid = main_pid(guest)
    make_writable(guest, scratch)
    assert main_pid(guest) == pid                 # reloaded in place, not restarted
    assert "configuration reloaded" in journal(guest, since)


def transfer_round(guest, workdir: Path, together: threading.Barrier, index: int,
                   size: int) -> str:
    name = f"client {index}.bin"                 # a space: percent-encoding on the wire
    local = workdir / f"up{index}.bin"
    digest = random_file(local, size)
    with connect(guest) as client:
        together.wait(60)                        # every session open before any transfer
        stored_size, stored_digest = client.put(str(local), name)
        assert (stored_size, stored_digest) == (size, digest)
        back = workdir / f"down{index}.bin"
        assert client.get(name, str(back)) == size
        assert sha256_of(back) == digest
        assert client.hash(name) == (size, digest)
    return name


def test_several_clients_at_once(guest, scratch):
    make_writable(guest, scratch)
    sizes = [1 << 20, 3 << 20, 512 << 10, 2 << 20, 1]
    together = threading.Barrier(len(sizes))
    with ThreadPoolExecutor(len(sizes)) as pool:
        names = list(pool.map(lambda args: transfer_round(guest, scratch, together, *args),
                              enumerate(sizes)))
    with connect(guest) as client:
        listed = {entry.name: entry.size for entry in client.list()}
    assert {name: listed.get(name) for name in names} == dict(zip(names, sizes, strict=True))
    # The same file over raw FTPD/1: G and H as the protocol text spells them.
    raw = RawSession(guest.port)
    try:
        raw.line()
        assert raw.ask("G client%203.bin") == f"OK {2 << 20}"
        data = raw.read_exact(2 << 20)
        assert raw.ask("H client%203.bin") == f"OK {len(data)} {hashlib.sha256(data).hexdigest()}"
        assert raw.ask("Q") == "OK bye"
    finally:
        raw.close()
    # The files really are in the guest's library, owned by the sessions' user.
    owners = guest.run(f"stat -c %U {library_root()}/client*").out.split()
    assert owners == [guide_config().get("server", "user", fallback="root")] * len(sizes)


def test_a_file_in_a_sub_directory_is_stored_moved_and_deleted(guest, scratch):
    make_writable(guest, scratch)
    data = b"kept in a tree\n"
    digest = hashlib.sha256(data).hexdigest()
    root = library_root()
    raw = RawSession(guest.port)
    try:
        raw.line()
        assert raw.ask("M tree") == "OK"
        assert raw.ask("M tree/sub") == "OK"
        assert raw.ask(f"P tree/sub/a%20file.txt {len(data)} {digest}") == "OK ready"
        raw.sock.sendall(data)
        assert raw.line() == f"OK {len(data)} {digest}"
        assert guest.run(f"cat '{root}/tree/sub/a file.txt'").out == data.decode()
        assert raw.ask("M tree/old") == "OK"
        assert raw.ask("R tree/sub/a%20file.txt tree/old/moved.txt") == "OK"
        assert raw.ask("L tree/old") == "OK 1"
        row = raw.line()
        assert row.startswith(f"{len(data)} ") and row.endswith(" moved.txt"), row
        assert raw.ask("L tree/sub") == "OK 0"
        assert raw.ask("H tree/old/moved.txt") == f"OK {len(data)} {digest}"
        for path in ("tree/old/moved.txt", "tree/old", "tree/sub", "tree"):
            assert raw.ask(f"D {path}") == "OK", path
        assert raw.ask("Q") == "OK bye"
    finally:
        raw.close()
    assert guest.run(f"test -e {root}/tree", check=False).rc != 0


def test_ftpc_cli_against_guest(guest, scratch):
    make_writable(guest, scratch)
    local = scratch / "via ftpc.txt"
    digest = random_file(local, 200_000)
    address = f"127.0.0.1:{guest.port}"

    def ftpc(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(ftpc_command(address, *args),
                                capture_output=True, text=True, timeout=120, cwd=scratch,
                                env=dict(os.environ, PYTHONPATH=str(PROJECT)))
        assert result.returncode == 0, result.stderr
        return result
    ftpc("put", str(local))
    listed = json.loads(ftpc("list", "--json").stdout)
    assert "via ftpc.txt" in json.dumps(listed)
    ftpc("get", "via ftpc.txt", "-o", str(scratch / "back.txt"))
    assert sha256_of(scratch / "back.txt") == digest
    assert digest in ftpc("hash", "via ftpc.txt").stdout


def test_reload_with_a_lower_limit_takes_effect(guest):
    guest.run("printf 'limit-pw\\n' | ftpd -c /etc/ftpd/ftpd.conf passwd limit")
    configure(guest, "server", "max_clients", "1")
    try:
        with connect(guest) as first:
            first.login("limit", "limit-pw")     # the shipped config lets no anonymous list
            first.list()                         # the one session, established

            wait_until(lambda: not accepted(guest), 60, 0.5, "ERR 421 for a second client")
    finally:
        configure(guest, "server", "max_clients", None)
    wait_until(lambda: accepted(guest), 60, 0.5, "the limit lifted again")


def test_journal_shows_sessions_and_transfers(guest, scratch):
    make_writable(guest, scratch)
    since = guest_clock(guest)
    local = scratch / "journal.bin"
    digest = random_file(local, 4096)
    with connect(guest) as client:
        client.put(str(local), "journal.bin")
    wait_until(lambda: "session end" in journal(guest, since), 30, 0.5,
               "the session's end in the journal")
    text = journal(guest, since)
    assert "session start 10.0.2.2:" in text     # qemu's gateway: the LAN peer
    transfers = [line for line in text.splitlines() if " transfer 10.0.2.2:" in line]
    assert any("journal.bin" in line and digest in line and "result=ok" in line
               for line in transfers), text
    assert "journal.bin" in guest.run("cat /var/log/ftpd/transfer.log").out


def test_the_guides_try_it_line_works_in_the_guest(guest):
    """deployment.md's "Try it", run as written, answers as written (the
    shipped config: no anonymous access), on whichever build is installed."""
    text = section(PROJECT / "docs" / "deployment.md", "### 4. Install the units and start")
    [command], shown = indented_blocks(text.split("Try it:", 1)[1])[:2]
    out = guest.run(f"timeout 30 sh -c {shlex.quote(command)}").out
    version = installed_version(guest)
    assert out.splitlines() == [line.replace(f" ftpd {__version__} ", f" ftpd {version} ")
                                for line in shown], out


def test_log_rotation_reopens_the_transfer_log(guest, scratch):
    make_writable(guest, scratch)
    assert guest.run("test -s /var/log/ftpd/transfer.log && echo ok").out.strip() == "ok"
    guest.run("logrotate -f /etc/logrotate.d/ftpd", timeout=60)
    assert guest.run("stat -c %s /var/log/ftpd/transfer.log").out.strip() == "0"   # a new file
    local = scratch / "after rotation.txt"
    random_file(local, 1000)
    with connect(guest) as client:
        client.put(str(local))
    # SIGUSR1 (sent through the pidfile) made the daemon write to the new file.
    wait_until(lambda: "after%20rotation.txt" in guest.run("cat /var/log/ftpd/transfer.log").out,
               30, 0.5, "the upload in the new transfer.log")
    assert "after%20rotation" not in guest.run("cat /var/log/ftpd/transfer.log.1").out


def test_sandboxing_is_in_force(guest):
    unit = UNIT.read_text()
    props = show(guest, "ftpd.service", "NoNewPrivileges", "ProtectSystem", "ProtectHome",
                 "PrivateTmp", "PrivateDevices", "MemoryDenyWriteExecute",
                 "RestrictNamespaces", "CapabilityBoundingSet", "SystemCallFilter")
    assert props["NoNewPrivileges"] == "yes" and props["PrivateTmp"] == "yes"
    assert props["ProtectSystem"] == "strict" and props["ProtectHome"] == "yes"
    assert props["PrivateDevices"] == "yes" and props["MemoryDenyWriteExecute"] == "yes"
    assert props["SystemCallFilter"] not in ("", "~")
    wanted = [cap for line in unit.splitlines() if line.startswith("CapabilityBoundingSet=")
              for cap in line.split("=", 1)[1].split()]
    assert sorted(props["CapabilityBoundingSet"].split()) == sorted(c.lower() for c in wanted)
    # The guide's claim ("systemd-analyze security ftpd rates it N"), checked
    # on the unit as a real systemd loaded it.
    rating = guest.run("systemd-analyze security --no-pager ftpd.service").out
    level = re.search(r"exposure level for ftpd\.service: ([\d.]+)", rating)
    claim = re.search(r"rates it ([\d.]+)", (PROJECT / "docs" / "deployment.md").read_text())
    assert level, rating[-300:]
    if claim:
        assert float(level.group(1)) <= float(claim.group(1)), rating[-300:]
    # ... and the running daemon really is confined, not just configured to be.
    status = proc_status(guest, main_pid(guest))
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    assert int(status["CapBnd"], 16) == cap_mask(tuple(wanted))
    denied = guest.run(f"nsenter -t {main_pid(guest)} -m touch /usr/ftpd-probe", check=False)
    assert denied.rc == 1 and "Read-only file system" in denied.err     # touch's failure
    guest.run("printf 'sandbox-pw\\n' | ftpd -c /etc/ftpd/ftpd.conf passwd sandbox")
    with connect(guest) as client:               # a session child inherits all of it
        client.login("sandbox", "sandbox-pw")
        client.list()
        children = [pid for pid in cgroup_pids(guest) if pid != main_pid(guest)]
        assert children, "no session process in the service's cgroup"
        child = proc_status(guest, max(children))    # the newest: this client's session
        assert child["Seccomp"].strip() == "2" and child["NoNewPrivs"].strip() == "1"
        user = guide_config().get("server", "user", fallback="")
        if user:                                 # privilege drop (the security issue)
            uid = guest.run(f"id -u {user}").out.strip()
            assert child["Uid"].split()[0] == uid


def test_stop_while_a_transfer_runs(guest, scratch):
    make_writable(guest, scratch)
    size = 48 << 20
    local = scratch / "big.bin"
    digest = random_file(local, size)
    with connect(guest, timeout=120) as client:
        client.put(str(local), "big.bin")
    idle = connect(guest)
    sink = SlowSink(rate=3 << 20)                # ~16 s: far longer than the stop request
    reader, errors = download_in_background(guest, "big.bin", sink)
    try:
        assert sink.started.wait(60), "the download never started"
        # The guide's "who is connected": the download shows, still running.
        status = guest.run("ftpd -c /etc/ftpd/ftpd.conf status").out
        assert re.search(r"10\.0\.2\.2:\d+ +anonymous +/ +G big\.bin", status), status
        since = guest_clock(guest)
        stop = guest.run("systemctl stop ftpd.service", timeout=90, check=False)
    finally:
        reader.join(120)
    text = journal(guest, since)
    assert stop.rc == 0, stop
    assert not reader.is_alive() and not errors, f"{errors}\njournal:\n{text}"
    assert (sink.received, sink.digest.hexdigest()) == (size, digest)   # it completed
    with pytest.raises((ServerError, ConnectionLost)) as told:
        idle.list()
    assert getattr(told.value, "code", 421) == 421
    idle.close()
    state = show(guest, "ftpd.service", "ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert re.search(r"draining [12] session", text), text    # the transfer was running
    assert "SIGKILL" not in text and "shutdown timeout" not in text, text


def test_socket_activation_serves_the_first_client(guest, scratch):
    make_writable(guest, scratch)                # the config the started service will read
    marker = scratch / "before activation.txt"
    marker.write_bytes(b"served by whichever daemon runs\n")
    with connect(guest) as client:
        client.put(str(marker))
    # A clean slate: stopped, not failed.
    guest.run("systemctl stop ftpd.service && systemctl reset-failed ftpd.service", timeout=90)
    assert guest.run("systemctl is-active ftpd.service", check=False).out.strip() == "inactive"
    assert guest.run("systemctl is-active ftpd.socket").out.strip() == "active"
    since = guest_clock(guest)
    with connect(guest, timeout=120) as client:  # this connect starts the service
        assert client.greeting.startswith("FTPD/1")
        assert marker.name in {entry.name for entry in client.list()}
    assert guest.run("systemctl is-active ftpd.service").out.strip() == "active"
    text = journal(guest, since)
    assert "Started" in text and "session start 10.0.2.2" in text, text


def test_enabled_units_come_back_after_a_reboot(guest, scratch):
    make_writable(guest, scratch)
    marker = scratch / "before reboot.txt"
    marker.write_bytes(b"on disk across the reboot\n")
    with connect(guest) as client:
        client.put(str(marker))
    guest.reboot(timeout=300)
    # Boot is done when systemd says so; a unit that failed makes it "degraded".
    state = guest.run("timeout 120 systemctl is-system-running --wait", check=False).out
    assert state.strip() == "running", guest.run("systemctl --failed --no-pager").out
    assert guest.run("systemctl is-active ftpd.socket ftpd.service").out.split() == \
        ["active", "active"]
    with connect(guest) as client:               # files and config survived the reboot
        assert marker.name in {entry.name for entry in client.list()}


SCRAPE = ("python3 -c \"import urllib.request; print(urllib.request.urlopen("
          "'http://127.0.0.1:9821/metrics', timeout=20).read().decode())\"")


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a scrape (label order differs between prometheus_client
    releases: Debian's writes them sorted)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} missing from the scrape:\n{text}")


def test_metrics_socket_serves_prometheus_with_the_sandbox_kept(guest, scratch):
    """docs/deployment.md's monitoring: ftpd-metrics.socket (shipped, off)
    passes the endpoint in; the service keeps its private network."""
    assert guest.run("systemctl is-enabled ftpd-metrics.socket", check=False).out.strip() \
        == "disabled"
    try:
        started = guest.run("systemctl enable ftpd-metrics.socket && "
                            "systemctl restart ftpd.socket ftpd", timeout=90, check=False)
        assert started.rc == 0, started.err + guest.run(
            "journalctl -n 60 --no-pager -u ftpd-metrics.socket -u ftpd.service").out
        before = metric(guest.run(SCRAPE, timeout=60).out, "ftpd_sessions_started_total")
        make_writable(guest, scratch)
        with connect(guest) as client:
            client.list()
        wait_until(lambda: metric(guest.run(SCRAPE, timeout=60).out,
                                  "ftpd_sessions_started_total") >= before + 2,
                   60, 0.5, "the sessions counted")
        text = guest.run(SCRAPE, timeout=60).out
        assert metric(text, "ftpd_transfers_total", verb="P", result="ok") >= 1, text
        sandbox = show(guest, "ftpd.service", "PrivateNetwork", "IPAddressDeny")
        assert sandbox["PrivateNetwork"] == "yes" and "0.0.0.0/0" in sandbox["IPAddressDeny"]
        assert "metrics on http://127.0.0.1:9821/metrics from systemd" in journal(guest)
        # Stopped with ftpd.socket (PartOf=): a scrape cannot start a stopped server.
        guest.run("systemctl stop ftpd.socket ftpd", timeout=90)
        assert guest.run("systemctl is-active ftpd-metrics.socket", check=False).out.strip() \
            == "inactive"
    finally:
        guest.run("systemctl disable --now ftpd-metrics.socket && "
                  "systemctl restart ftpd.socket ftpd", timeout=90, check=False)


# -- the package's life cycle: last in file order (a purge or an upgrade before
# another test is undone by as_the_guide_leaves_it, at the cost of an apt install) ----

def test_upgrade_while_a_download_runs(guest, scratch):
    """`apt install` of a newer build: the running download completes, the
    new code serves afterwards, and the socket was never restarted."""
    ensure_installed(guest, __version__)         # the older build, to upgrade from
    guest.run("systemctl start ftpd.socket ftpd.service", timeout=90)
    make_writable(guest, scratch)
    size = 16 << 20
    local = scratch / "upgrade.bin"
    digest = random_file(local, size)
    with connect(guest, timeout=120) as client:
        client.put(str(local), "upgrade.bin")
        assert f"ftpd {UPGRADE_VERSION} " not in client.greeting     # the old code
    socket_since = show(guest, "ftpd.socket", "ActiveEnterTimestampMonotonic")
    # Slow until the old daemon drains (apt restarts it at the very end),
    # then at full speed, well within [server] shutdown_timeout.
    sink = GatedSink(rate=64 << 10)
    reader, errors = download_in_background(guest, "upgrade.bin", sink)
    try:
        assert sink.started.wait(60), "the download never started"
        since = guest_clock(guest)
        start_in_background(guest, apt_install_command(UPGRADE_VERSION), "upgrade")
        wait_until(lambda: "draining" in journal(guest, since), INSTALL_TIMEOUT, 0.5,
                   "the old daemon to drain")
        assert reader.is_alive() and sink.received < size      # mid-download
        sink.release.set()
        rc, output = wait_background(guest, "upgrade", INSTALL_TIMEOUT)
    finally:
        sink.release.set()
        reader.join(120)
    assert rc == 0, output
    assert not reader.is_alive() and not errors, f"{errors}\n{output}"
    assert (sink.received, sink.digest.hexdigest()) == (size, digest)   # it completed
    with connect(guest) as client:               # the new code answers
        assert f"ftpd {UPGRADE_VERSION} ready" in client.greeting, client.greeting
        assert "upgrade.bin" in {entry.name for entry in client.list()}
    assert guest.run("dpkg-query -W -f '${Version}' ftpd").out == UPGRADE_VERSION
    assert guest.run("ftpd --version").out.strip() == f"ftpd {UPGRADE_VERSION}"
    text = journal(guest, since)
    assert re.search(r"draining [12] session", text), text       # a graceful stop
    assert "SIGKILL" not in text and "shutdown timeout" not in text, text
    assert show(guest, "ftpd.socket", "ActiveEnterTimestampMonotonic") == socket_since
    # The admin's edited config was kept (the shipped file did not change).
    assert "anonymous = write" in guest.run("cat /etc/ftpd/ftpd.conf").out


def test_purge_leaves_only_what_policy_keeps(guest):
    guest.run("printf 'purge-pw\\n' | ftpd -c /etc/ftpd/ftpd.conf passwd carol")
    assert guest.run("test -s /etc/ftpd/users && echo ok").out.strip() == "ok"
    library = library_root()
    files_before = guest.run(f"ls {library}").out.split()
    guest.run("apt-get purge -y ftpd", timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"})
    status = guest.run("dpkg-query -W -f '${db:Status-Abbrev}' ftpd", check=False).out
    assert status.strip() in ("", "un")          # not even config files left
    assert guest.run("systemctl is-active ftpd.socket ftpd.service", check=False).out.split() \
        == ["inactive", "inactive"]
    assert guest.run("ss -Hltn 'sport = :8021'").out.strip() == ""    # nobody listens
    gone = ["/etc/ftpd", "/var/log/ftpd", "/usr/bin/ftpd", "/usr/bin/ftpc",
            "/usr/lib/python3/dist-packages/ftpd", "/lib/systemd/system/ftpd.service",
            "/lib/systemd/system/ftpd.socket", "/lib/systemd/system/ftpd-metrics.socket",
            "/usr/lib/sysusers.d/ftpd.conf",
            "/usr/lib/tmpfiles.d/ftpd.conf", "/etc/logrotate.d/ftpd",
            "/usr/share/bash-completion/completions/ftpd"]
    left = guest.run("for path in " + " ".join(gone) +
                     "; do [ -e \"$path\" ] && echo \"$path\"; done; true").out.split()
    assert left == []
    links = guest.run("find /etc/systemd /var/lib/systemd -name 'ftpd.service*' "
                      "-o -name 'ftpd.socket*' -o -name 'ftpd-metrics.socket*'").out.split()
    assert links == []                           # no enablement symlinks or state
    # Kept by policy: the users' files in the library (and the system user,
    # which may own files there).
    assert guest.run(f"ls {library}").out.split() == files_before
