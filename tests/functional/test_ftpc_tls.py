"""ftpc's TLS settings: the context it builds, and what it does with a certificate.

The daemon's TLS is built separately; here a minimal TLS endpoint that greets
and answers `L` is enough to see ftpc accept a trusted certificate and refuse
an untrusted or misnamed one.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading

import pytest

from ftpd.ftpc.connect import INSECURE_WARNING, build_ssl_context
from tests.certs import make_pki
from tests.ftpc_util import run_ftpc


def test_context_requires_tls12_and_checks_the_host_name():
    context = build_ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_insecure_context_warns_and_checks_nothing():
    warned = io.StringIO()
    context = build_ssl_context(insecure=True, warn=warned)
    assert context.verify_mode == ssl.CERT_NONE and context.check_hostname is False
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert warned.getvalue().strip() == INSECURE_WARNING


@pytest.fixture(scope="module")
def tls_endpoint(tmp_path_factory):
    """A TLS listener on 127.0.0.1 whose certificate names only IP 127.0.0.1;
    yields its port and the CA that signed the certificate."""
    pki = make_pki(tmp_path_factory.mktemp("tls"), names=["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(listener, context), daemon=True).start()
    yield listener.getsockname()[1], pki.ca_cert
    listener.close()


def _serve(listener: socket.socket, context: ssl.SSLContext) -> None:
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"OK FTPD/1 tls test\n")
                for line in conn.makefile("rb"):
                    conn.sendall(b"OK 0\n" if line.strip() == b"L" else b"OK bye\n")
                    if line.strip() == b"Q":
                        break
        except (OSError, ssl.SSLError):
            raw.close()


def test_trusted_certificate_connects(tls_endpoint, tmp_path):
    port, cert = tls_endpoint
    result = run_ftpc("--cafile", str(cert), f"127.0.0.1:{port}", "list", "--json",
                      home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_untrusted_certificate_is_refused_with_exit_3(tls_endpoint, tmp_path):
    port, _ = tls_endpoint
    result = run_ftpc("--tls", f"127.0.0.1:{port}", "list", home=tmp_path)
    assert result.returncode == 3
    assert b"certificate verify failed" in result.stderr.lower()


def test_wrong_host_name_is_refused_even_with_the_right_ca(tls_endpoint, tmp_path):
    port, cert = tls_endpoint
    result = run_ftpc("--cafile", str(cert), f"localhost:{port}", "list", home=tmp_path)
    assert result.returncode == 3
    assert b"mismatch" in result.stderr.lower() or b"verify failed" in result.stderr.lower()


def test_insecure_connects_but_says_so(tls_endpoint, tmp_path):
    port, _ = tls_endpoint
    result = run_ftpc("--insecure", f"127.0.0.1:{port}", "list", home=tmp_path)
    assert result.returncode == 0
    assert INSECURE_WARNING.encode() in result.stderr


def test_missing_cafile_is_a_usage_error(tmp_path):
    result = run_ftpc("--cafile", str(tmp_path / "nope.pem"), "127.0.0.1:1", "list",
                      home=tmp_path)
    assert result.returncode == 2
    assert b"nope.pem" in result.stderr
