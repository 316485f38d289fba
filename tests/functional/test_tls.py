"""Implicit TLS against the real daemon, with a CA made at test time."""

import hashlib
import signal
import ssl
import time
import warnings

import pytest

from ftpd.client import Client, ConnectionLost
from tests.certs import make_pki
from tests.harness import fork_only, recv_all, run_ftpd, wait_until, write_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki, **extra):
    return {"tls": {"certificate": pki.cert, "private_key": pki.key, **extra}}


def tls_client(daemon, context, timeout=10.0):
    return Client(daemon.host, daemon.port, timeout=timeout, ssl_context=context)


def test_every_verb_works_over_tls_1_2_or_later(make_daemon, pki, tmp_path):
    daemon = make_daemon(tls_settings(pki))
    data = b"over tls\n" * 5000
    (tmp_path / "up.bin").write_bytes(data)
    with tls_client(daemon, pki.client_context()) as c:
        assert c.greeting.startswith("FTPD/1")
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert c.put(str(tmp_path / "up.bin"), "up.bin") == (len(data),
                                                             hashlib.sha256(data).hexdigest())
        assert [e.name for e in c.list()] == ["up.bin"]
        assert c.get("up.bin", str(tmp_path / "down.bin")) == len(data)
        assert c.hash("up.bin")[1] == hashlib.sha256(data).hexdigest()
        assert c.get("up.bin", str(tmp_path / "down.bin"), offset=1000) == len(data) - 1000
    assert (tmp_path / "down.bin").read_bytes() == data
    assert (daemon.root / "up.bin").read_bytes() == data


def test_tls_1_2_only_client_is_served(make_daemon, pki):
    daemon = make_daemon(tls_settings(pki))
    context = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with tls_client(daemon, context) as c:
        assert c.sock.version() == "TLSv1.2"
        assert c.list() == []


def test_tls_1_1_is_refused_by_the_server(make_daemon, pki):
    daemon = make_daemon(tls_settings(pki))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")     # let our side offer TLS 1.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ConnectionLost) as info:
        tls_client(daemon, context)
    # The alert comes from the server: it is the server that said no.
    assert "ALERT_PROTOCOL_VERSION" in str(info.value)
    wait_until(lambda: "TLS handshake with 127.0.0.1" in daemon.log(), what="log line")


def test_unknown_ca_is_rejected_by_the_client(make_daemon, pki, tmp_path):
    daemon = make_daemon(tls_settings(pki))
    stranger = make_pki(tmp_path / "stranger")
    with pytest.raises(ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
        tls_client(daemon, stranger.client_context())


def test_plaintext_client_never_gets_a_plaintext_byte(make_daemon, pki):
    daemon = make_daemon(tls_settings(pki))
    with daemon.connect() as sock:
        sock.sendall(b"L\nG anything\n")
        received = recv_all(sock, timeout=10, reset_ends=True)
    assert b"OK" not in received and b"FTPD/1" not in received
    wait_until(lambda: "TLS handshake with 127.0.0.1" in daemon.log(), what="handshake log")
    assert daemon.proc.poll() is None


@fork_only
def test_silent_client_is_dropped_after_the_handshake_timeout(make_daemon, pki):
    daemon = make_daemon(tls_settings(pki, handshake_timeout=1))
    with daemon.connect(timeout=15) as silent:
        wait_until(lambda: len(daemon.live_children()) == 1, what="the child")
        started = time.monotonic()
        with tls_client(daemon, pki.client_context()) as c:   # the parent still serves
            assert c.list() == []
        assert silent.recv(1) == b""
        waited = time.monotonic() - started
    assert 0.5 <= waited < 10
    wait_until(lambda: "failed: timed out" in daemon.log(), what="the timeout log line")
    wait_until(lambda: not daemon.live_children(), what="children to exit")


def run_check(tmp_path, settings):
    conf = write_config(tmp_path / "check.conf", {
        "server": {"listen": "127.0.0.1:0", "root": tmp_path}, **settings})
    return run_ftpd("-c", str(conf), "check")


@pytest.mark.parametrize("case, key", [
    ("missing certificate", "[tls] certificate"),
    ("mismatched key", "[tls] private_key"),
    ("key without certificate", "[tls] certificate"),
    ("certificate is not PEM", "[tls] certificate"),
])
def test_bad_tls_files_are_config_errors(pki, tmp_path, case, key):
    tls = {"certificate": pki.cert, "private_key": pki.key}
    if case == "missing certificate":
        tls["certificate"] = tmp_path / "nope.pem"
    elif case == "mismatched key":
        tls["private_key"] = pki.other_key
    elif case == "key without certificate":
        del tls["certificate"]
    else:
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        tls["certificate"] = tmp_path / "junk.pem"
    result = run_check(tmp_path, {"tls": tls})
    assert result.returncode == 78, result.stderr
    assert key in result.stderr and "check.conf" in result.stderr


def test_good_tls_config_checks_ok(pki, tmp_path):
    result = run_check(tmp_path, tls_settings(pki))
    assert result.returncode == 0, result.stderr
    assert "TLS" in result.stdout


def test_reload_with_a_broken_certificate_keeps_tls_working(make_daemon, pki, tmp_path):
    daemon = make_daemon(tls_settings(pki))
    daemon.settings["tls"]["certificate"] = tmp_path / "gone.pem"
    daemon.write_config()
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in daemon.log(), what="reload refusal")
    assert "[tls] certificate" in daemon.log()
    with tls_client(daemon, pki.client_context()) as c:
        assert c.list() == []



def test_ftpc_over_tls_against_the_real_daemon(make_daemon, pki, tmp_path):
    from tests.ftpc_util import run_ftpc

    daemon = make_daemon(tls_settings(pki))
    (daemon.root / "secret.txt").write_bytes(b"over tls\n")
    address = f"localhost:{daemon.port}"
    good = run_ftpc("--cafile", str(pki.ca_cert), address, "get", "secret.txt", home=tmp_path)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "secret.txt").read_bytes() == b"over tls\n"
    untrusted = run_ftpc("--tls", address, "list", home=tmp_path)
    assert untrusted.returncode == 3                       # system CAs do not know ours
    insecure = run_ftpc("--insecure", address, "list", "--json", home=tmp_path)
    assert insecure.returncode == 0 and b"secret.txt" in insecure.stdout
    assert b"warning" in insecure.stderr.lower()
    plain = run_ftpc("--timeout", "5", address, "list", home=tmp_path)
    assert plain.returncode == 3, plain.stderr             # no plaintext FTPD/1 there
