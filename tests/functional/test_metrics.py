"""Monitoring (issue 16): `[metrics] listen`, a Prometheus endpoint on the
parent, scraped with a real HTTP client (urllib) from the real daemon in
both session models. Forked sessions report to the parent, so every count
is checked to the byte."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Dict, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (PROJECT, listening_ports, project_env, read_reply, recv_all,
                           recv_exact, run_ftpd, wait_until, write_config)
from tests.functional.test_tree import ask, put

METRICS_LINE = re.compile(r"metrics on http://(\S+)/metrics")
KiB, MiB = 1 << 10, 1 << 20
Series = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def metrics_settings(**extra: Dict[str, object]) -> Dict[str, Dict[str, object]]:
    settings: Dict[str, Dict[str, object]] = {"metrics": {"listen": "127.0.0.1:0"},
                                              "access": {"login_failure_delay": 0}}
    for section, values in extra.items():
        settings.setdefault(section, {}).update(values)
    return settings


def endpoint(daemon, which: int = -1) -> str:
    """The metrics URL the daemon logged (the latest, after a rebind)."""
    return f"http://{METRICS_LINE.findall(daemon.log())[which]}/metrics"


def scrape(url: str) -> Series:
    """Every sample, keyed by name and sorted labels, read by prometheus_client's parser."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, tuple(sorted(labels.items())))]


def settled(url: str, check) -> Series:
    """The first scrape for which `check(series)` holds (reports arrive a
    moment after the client has seen the reply)."""
    return wait_until(lambda: (lambda s: s if check(s) else None)(scrape(url)),
                      what="the metrics to settle")


def download(sock: socket.socket, name: bytes) -> bytes:
    head = ask(sock, b"G " + name + b"\n")
    assert head.startswith(b"OK "), head
    return recv_exact(sock, int(head.split()[1]))


def test_a_scrape_during_a_transfer_and_exact_counts_after(make_daemon, concurrency):
    daemon = make_daemon(metrics_settings(files={"max_rate": "1M"}))
    big = os.urandom(2 * MiB)            # about 2 s at max_rate
    (daemon.root / "big").write_bytes(big)
    url = endpoint(daemon)
    fds = daemon.num_fds()
    with daemon.greeted(timeout=30) as sock:
        head = ask(sock, b"G big\n")
        assert head == b"OK %d\n" % len(big)
        first = recv_exact(sock, 64 * KiB)
        during = scrape(url)             # the download is under way
        assert value(during, "ftpd_sessions") >= 1
        assert value(during, "ftpd_transfers_total", verb="G", result="ok") == 0
        if concurrency == "fork":
            assert value(during, "ftpd_session_processes") >= 1
            assert value(during, "ftpd_session_memory_uss_bytes") > 0
            assert value(during, "ftpd_session_memory_rss_bytes") > 0
        else:                            # sessions are threads of the parent
            assert ("ftpd_session_processes", ()) not in during
        assert first + recv_exact(sock, len(big) - len(first)) == big
        upload = os.urandom(300 * KiB)
        digest = hashlib.sha256(upload).hexdigest().encode()
        assert put(sock, b"up", upload, digest).startswith(b"OK %d " % len(upload))
        wrong = hashlib.sha256(b"other").hexdigest().encode()
        assert put(sock, b"bad", b"x" * 1000, wrong).startswith(b"ERR 422")
        assert download(sock, b"up") == upload
        assert ask(sock, b"M dir\n") == b"OK\n"
        assert ask(sock, b"M dir\n").startswith(b"ERR ")
    after = settled(url, lambda s: value(s, "ftpd_sessions") == 0 and value(
        s, "ftpd_transfers_total", verb="M", result="failed") == 1)
    expected = {("G", "ok"): 2, ("P", "ok"): 1, ("P", "failed"): 1, ("M", "ok"): 1,
                ("M", "failed"): 1}
    for verb in "GPCMDR":
        for result in ("ok", "failed"):
            assert value(after, "ftpd_transfers_total", verb=verb, result=result) == \
                expected.get((verb, result), 0), (verb, result)
    assert value(after, "ftpd_transfer_bytes_total", direction="out") == len(big) + len(upload)
    assert value(after, "ftpd_transfer_bytes_total", direction="in") == len(upload) + 1000
    assert value(after, "ftpd_sessions_started_total") == 1      # scrapes are not sessions
    if concurrency == "fork":
        assert value(after, "ftpd_session_cpu_seconds_total", mode="user") > 0
    assert value(after, "process_open_fds") > 0                    # the parent's own
    assert "signal" not in daemon.log()        # seccomp let the reports through
    wait_until(lambda: not daemon.zombies(), what="sessions to be reaped")
    wait_until(lambda: daemon.num_fds() == fds, what="the parent's fds back to before")


def connect_from(daemon, source: str) -> socket.socket:
    return socket.create_connection((daemon.host, daemon.port), timeout=10,
                                    source_address=(source, 0))


def test_refused_clients_are_counted_by_reason_and_failed_logins(make_daemon):
    daemon = make_daemon(metrics_settings(server={"max_clients": 3, "max_clients_per_ip": 1}))
    url = endpoint(daemon)
    with connect_from(daemon, "127.0.0.1") as first, \
            connect_from(daemon, "127.0.0.2") as second:
        for sock in (first, second):
            assert read_reply(sock).startswith(b"OK FTPD/1 ")
            # A session that has spoken is not silent: with two silent ones
            # out of 3, the early drop would refuse the third at random.
            assert ask(sock, b"H missing\n").startswith(b"ERR 404")
        with connect_from(daemon, "127.0.0.2") as same_ip:
            assert recv_all(same_ip, reset_ends=True) == \
                b"ERR 421 too many connections from your address\n"
        with connect_from(daemon, "127.0.0.3") as third:
            assert read_reply(third).startswith(b"OK FTPD/1 ")
            with connect_from(daemon, "127.0.0.4") as over:
                assert recv_all(over, reset_ends=True) == b"ERR 421 too many clients\n"
        assert ask(first, b"A nobody wrong\n").startswith(b"ERR 401")
        assert ask(second, b"A nobody wrong\n").startswith(b"ERR 401")
        series = settled(url, lambda s: value(s, "ftpd_login_failures_total") == 2)
        assert value(series, "ftpd_sessions") >= 2
    assert value(series, "ftpd_sessions_refused_total", reason="max_clients_per_ip") == 1
    assert value(series, "ftpd_sessions_refused_total", reason="max_clients") == 1
    assert value(series, "ftpd_sessions_refused_total", reason="silent") == 0     # both spoke
    assert value(series, "ftpd_sessions_started_total") == 3


def test_reloads_are_counted_and_a_changed_address_rebinds(make_daemon):
    daemon = make_daemon(metrics_settings())
    url = endpoint(daemon)
    daemon.send_signal(signal.SIGHUP)
    settled(url, lambda s: value(s, "ftpd_reloads_total", result="ok") == 1)
    daemon.config_path.write_text(daemon.config_path.read_text() + "[nonsense]\n")
    daemon.send_signal(signal.SIGHUP)
    settled(url, lambda s: value(s, "ftpd_reloads_total", result="refused") == 1)
    daemon.settings["metrics"]["listen"] = "127.0.0.2:0"
    daemon.write_config()
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(METRICS_LINE.findall(daemon.log())) == 2, what="the rebind")
    moved = endpoint(daemon)
    assert moved.startswith("http://127.0.0.2:")
    series = scrape(moved)                # the counters came along
    assert value(series, "ftpd_reloads_total", result="ok") == 2
    assert value(series, "ftpd_reloads_total", result="refused") == 1
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)
    assert len(listening_ports(daemon.pid)) == 2          # FTPD/1 and the new metrics


def test_only_get_of_metrics_is_answered_and_a_bad_request_costs_nothing(make_daemon):
    daemon = make_daemon(metrics_settings())
    url = endpoint(daemon)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=5)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as posted:
        urllib.request.urlopen(url, data=b"x", timeout=5)
    assert posted.value.code == 405
    host, port = url.split("/")[2].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nX: " + b"y" * 10000)
        assert recv_all(sock, reset_ends=True).startswith(b"HTTP/1.0 400 ")
    silent = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    try:
        assert value(scrape(url), "ftpd_sessions") == 0     # served beside silent ones
        with daemon.greeted() as sock:                       # and so is FTPD/1
            assert ask(sock, b"L\n") == b"OK 0\n"
    finally:
        for sock in silent:
            sock.close()


def test_metrics_are_off_by_default_and_prometheus_client_is_not_loaded(make_daemon):
    daemon = make_daemon()
    assert listening_ports(daemon.pid) == [daemon.port]
    assert "metrics on" not in daemon.log()
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from ftpd.server import parent, service, "
         "session, child; print('prometheus_client' in sys.modules)"],
        env=project_env(), cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "False", loaded.stderr


@pytest.mark.parametrize("listen, problem", [
    ("localhost", "is not host:port"),
    ("127.0.0.1:70000", "out of range"),
    ("127.0.0.1:1,127.0.0.1:2", "is not host:port"),
])
def test_check_refuses_a_bad_metrics_address(tmp_path, listen, problem):
    config = write_config(tmp_path / "ftpd.conf", {
        "server": {"root": tmp_path / "library"}, "metrics": {"listen": listen}})
    result = run_ftpd("-c", str(config), "check")
    assert result.returncode == 78
    assert "[metrics] listen" in result.stderr and problem in result.stderr


def test_a_metrics_port_in_use_stops_the_start(tmp_path):
    (tmp_path / "library").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_config(tmp_path / "ftpd.conf", {
            "server": {"root": tmp_path / "library", "listen": "127.0.0.1:0"},
            "metrics": {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}})
        result = run_ftpd("-c", str(config), timeout=30)
    assert result.returncode == 69
    assert "cannot listen on 127.0.0.1:" in result.stderr


def test_behind_a_proxy_the_sessions_own_refusals_reach_the_parent(make_daemon):
    daemon = make_daemon(metrics_settings(server={
        "proxy_protocol": "yes", "trusted_proxies": "127.0.0.1", "max_clients_per_ip": 1}))
    url = endpoint(daemon)
    header = b"PROXY TCP4 10.0.0.9 127.0.0.1 40000 8021\r\n"
    with connect_from(daemon, "127.0.0.1") as first:
        first.sendall(header)
        assert read_reply(first).startswith(b"OK FTPD/1 ")
        with connect_from(daemon, "127.0.0.1") as second:     # the same real client
            second.sendall(header)
            assert recv_all(second, reset_ends=True) == \
                b"ERR 421 too many connections from your address\n"
        with connect_from(daemon, "127.0.0.2") as stranger:   # not a trusted proxy
            assert recv_all(stranger, reset_ends=True) == b""
        series = settled(url, lambda s: value(
            s, "ftpd_sessions_refused_total", reason="per_ip_proxied") == 1)
    assert value(series, "ftpd_sessions_refused_total", reason="untrusted_proxy") == 1
    assert value(series, "ftpd_sessions_started_total") == 2   # the child refused the second


def test_a_detached_daemon_keeps_its_metrics_socket(tmp_path):
    (tmp_path / "library").mkdir()
    config = write_config(tmp_path / "ftpd.conf", {
        "server": {"root": tmp_path / "library", "listen": "127.0.0.1:0",
                   "pidfile": tmp_path / "ftpd.pid"},
        "metrics": {"listen": "127.0.0.1:0"}, "log": {"file": tmp_path / "ftpd.log"}})
    result = run_ftpd("-c", str(config), "serve", "--daemon")
    assert result.returncode == 0, result.stderr
    pid = int((tmp_path / "ftpd.pid").read_text())
    try:
        found = METRICS_LINE.findall((tmp_path / "ftpd.log").read_text())
        assert len(found) == 1
        series = scrape(f"http://{found[0]}/metrics")   # bound before detaching, kept
        assert value(series, "ftpd_sessions") == 0
        assert len(listening_ports(pid)) == 2
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not (tmp_path / "ftpd.pid").exists(), what="the daemon to stop")
