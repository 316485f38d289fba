"""PROXY protocol v1/v2 parsing, byte-exact reading and trust checks."""

import socket
import struct

import pytest
from hypothesis import given, strategies as st

from ftpd.server import proxy
from ftpd.server.proxy import ProxyError


def feed(data: bytes, then: bytes = b"", timeout: float = 2.0):
    """Run read_header on a socketpair fed `data`; return (result, leftover)."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(data + then)
        result = proxy.read_header(ours, timeout)
        ours.settimeout(0.2)
        try:
            leftover = ours.recv(65536) if then else b""
        except socket.timeout:
            leftover = b""
        return result, leftover
    finally:
        ours.close()
        theirs.close()


def test_v1_tcp4_and_nothing_more_is_read():
    header = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8021\r\n"
    assert feed(header, b"\x16\x03\x01TLS") == (("192.0.2.7", 51234), b"\x16\x03\x01TLS")


def test_v1_tcp6_and_unknown():
    assert feed(b"PROXY TCP6 2001:db8::1 ::1 4000 8021\r\n")[0] == ("2001:db8::1", 4000)
    assert feed(b"PROXY UNKNOWN\r\n")[0] is None
    assert feed(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")[0] is None


def test_v2_tcp4_tcp6_local():
    v4 = proxy.build_v2(("198.51.100.9", 40000), ("127.0.0.1", 8021))
    assert feed(v4, b"L\n") == (("198.51.100.9", 40000), b"L\n")
    v6 = proxy.build_v2(("2001:db8::5", 1), ("::1", 8021))
    assert feed(v6)[0] == ("2001:db8::5", 1)
    local = proxy.V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    assert feed(local, b"Q\n") == (None, b"Q\n")


def test_v2_with_tlvs_consumes_exactly_its_length():
    body = (socket.inet_pton(socket.AF_INET, "203.0.113.1") * 2 + struct.pack("!HH", 7, 8)
            + b"\x04\x00\x03abc")              # a TLV HAProxy may append
    header = proxy.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    assert feed(header, b"rest") == (("203.0.113.1", 7), b"rest")


@pytest.mark.parametrize("data", [
    b"L\n", b"GET / HTTP/1.0\r\n\r\n", b"PROXY TCP4 1.2.3.4\r\n",
    b"PROXY TCP4 ::1 ::1 1 2\r\n", b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n", b"PROXY " + b"x" * 200 + b"\r\n",
    proxy.V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    proxy.V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12,
    proxy.V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4,
    proxy.V2_SIGNATURE + b"\x21\x11\xff\xff",
])
def test_malformed_headers_are_refused(data):
    with pytest.raises(ProxyError):
        feed(data, timeout=0.5)


def test_missing_header_times_out():
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(b"PRO")
        with pytest.raises(ProxyError, match="timed out"):
            proxy.read_header(ours, 0.2)
    finally:
        ours.close()
        theirs.close()


def test_trust_checks():
    nets = proxy.parse_networks("127.0.0.1, 10.0.0.0/8, ::1")
    assert proxy.is_trusted("127.0.0.1", nets)
    assert proxy.is_trusted("10.1.2.3", nets)
    assert proxy.is_trusted("::1", nets)
    assert proxy.is_trusted("::ffff:10.0.0.1", nets)
    assert not proxy.is_trusted("127.0.0.2", nets)
    assert not proxy.is_trusted("not an ip", nets)
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        proxy.parse_networks("10.0.0.0/33")


@given(st.ip_addresses(), st.integers(0, 65535), st.booleans())
def test_build_and_parse_roundtrip(address, port, v2):
    source = (str(address), port)
    destination = ("::1", 8021) if address.version == 6 else ("127.0.0.1", 8021)
    header = proxy.build_v2(source, destination) if v2 else proxy.build_v1(source, destination)
    assert feed(header)[0] == (str(address), port)


def test_peer_table_limits_per_address_across_fork_and_frees_dead_slots():
    import os
    from concurrent.futures import ThreadPoolExecutor
    from ftpd.server.peers import PeerTable

    table = PeerTable(4)
    first = table.admit("10.0.0.1", limit=2)
    assert first is not None
    to_child, from_parent = os.pipe()
    from_child, to_parent = os.pipe()
    pid = os.fork()
    if pid == 0:                            # a sibling session in another process
        try:
            ok = table.admit("10.0.0.1", 2) is not None
            os.write(to_parent, b"1" if ok else b"0")
            os.read(to_child, 1)            # stay alive until told, then die unreleased
        finally:
            os._exit(0)
    with ThreadPoolExecutor(1) as other_session:   # a third session of that address
        assert os.read(from_child, 1) == b"1"
        assert other_session.submit(table.admit, "10.0.0.1", 2).result() is None
        assert other_session.submit(table.admit, "10.0.0.2", 2).result() is not None
        os.write(from_parent, b"x")
        os.waitpid(pid, 0)
        assert other_session.submit(table.admit, "10.0.0.1", 2).result() is not None
    table.release(first)
    for fd in (to_child, from_parent, from_child, to_parent):
        os.close(fd)
