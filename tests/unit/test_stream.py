"""Stream's bulk paths on real sockets: chunked receive with kernel timeouts,
sendfile, and the TLS fallbacks (user-space encryption must never be
bypassed by sendfile(2))."""

import os
import socket
import ssl
import threading

import pytest

from ftpd.stream import CHUNK, Stream, StreamTimeout
from tests.certs import make_pki
from tests.harness import recv_exact


def tcp_pair():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def test_iter_exact_yields_the_pipelined_head_then_full_chunks():
    server, client = tcp_pair()
    payload = os.urandom(3 * CHUNK + 123)
    stream = Stream(server)
    stream.buffer += b"HEAD"
    sender = threading.Thread(target=client.sendall, args=(payload,))
    sender.start()
    chunks = [bytes(c) for c in stream.iter_exact(4 + len(payload), 10)]
    sender.join()
    assert b"".join(chunks) == b"HEAD" + payload
    assert [len(c) for c in chunks] == [4, CHUNK, CHUNK, CHUNK, 123]
    server.close()
    client.close()


def test_iter_exact_times_out_on_a_stalled_sender():
    server, client = tcp_pair()
    client.sendall(b"x" * 1000)
    with pytest.raises(StreamTimeout):
        for _ in Stream(server).iter_exact(5000, 0.2):
            pass
    server.close()
    client.close()


def test_sendfile_sends_the_range(tmp_path):
    server, client = tcp_pair()
    data = os.urandom(5 * CHUNK)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        result = {}
        reader = threading.Thread(
            target=lambda: result.update(got=recv_exact(client, len(data) - 10)))
        reader.start()
        assert Stream(server).sendfile(handle, 10, len(data) - 10, 10) == len(data) - 10
        reader.join(30)
    assert result["got"] == data[10:]
    server.close()
    client.close()


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("tls"))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.cert, pki.key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(pki.ca_cert)
    return server_ctx, client_ctx


def tls_pair(tls_contexts):
    server_ctx, client_ctx = tls_contexts
    raw_server, raw_client = tcp_pair()
    wrapped = {}
    handshake = threading.Thread(target=lambda: wrapped.update(
        server=server_ctx.wrap_socket(raw_server, server_side=True)))
    handshake.start()
    client = client_ctx.wrap_socket(raw_client, server_hostname="localhost")
    handshake.join(10)
    return wrapped["server"], client


def test_tls_sendfile_encrypts_instead_of_using_sendfile2(tls_contexts, tmp_path):
    server, client = tls_pair(tls_contexts)
    data = os.urandom(2 * CHUNK + 7)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    result = {}
    reader = threading.Thread(target=lambda: result.update(got=recv_exact(client, len(data))))
    reader.start()
    with open(path, "rb") as handle:
        assert Stream(server).sendfile(handle, 0, len(data), 10) == len(data)
    reader.join(30)
    assert result["got"] == data
    server.close()
    client.close()


def test_tls_iter_exact_receives_decrypted_chunks(tls_contexts):
    server, client = tls_pair(tls_contexts)
    payload = os.urandom(2 * CHUNK + 5)
    sender = threading.Thread(target=client.sendall, args=(payload,))
    sender.start()
    received = b"".join(bytes(c) for c in Stream(server).iter_exact(len(payload), 10))
    sender.join(30)
    assert received == payload
    server.close()
    client.close()
