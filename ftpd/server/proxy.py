"""PROXY protocol v1 and v2 (as HAProxy sends them), read in the child.

Only the header's own bytes are read — never one more — because what follows
may be a TLS handshake that the ssl module must see from its first byte.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from typing import Iterable, Optional, Tuple

from ftpd.config import Address, Network

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107                      # the spec's longest v1 line, CRLF included
V2_MAX_PAYLOAD = 4096             # TLVs beyond this are not what HAProxy sends



class ProxyError(Exception):
    """A missing, malformed or late PROXY header: the connection must close."""


def parse_networks(text: str) -> Tuple[Network, ...]:
    """'127.0.0.1, 10.0.0.0/8, ::1' -> networks (ValueError names the bad one)."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or CIDR network") from None
    return tuple(networks)


def is_trusted(ip: str, networks: Iterable[Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def read_header(sock: socket.socket, timeout: float) -> Optional[Address]:
    """The client's real (host, port), or None for LOCAL/UNKNOWN (use the peer)."""
    deadline = time.monotonic() + timeout
    start = _recv_exact(sock, 5, deadline)
    if start == b"PROXY":
        return _read_v1(sock, start, deadline)
    if start == V2_SIGNATURE[:5]:
        return _read_v2(sock, start, deadline)
    raise ProxyError("no PROXY protocol header")


def _recv_exact(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProxyError("PROXY header timed out")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(count - len(data))
        except socket.timeout:
            raise ProxyError("PROXY header timed out") from None
        except OSError as exc:
            raise ProxyError(f"connection failed: {exc}") from exc
        if not chunk:
            raise ProxyError("connection closed before the PROXY header")
        data += chunk
    return data


def _read_v1(sock: socket.socket, line: bytes, deadline: float) -> Optional[Address]:
    while not line.endswith(b"\r\n"):
        if len(line) >= V1_MAX:
            raise ProxyError("PROXY v1 line too long")
        line += _recv_exact(sock, 1, deadline)
    return parse_v1(line)


def parse_v1(line: bytes) -> Optional[Address]:
    fields = line[:-2].split(b" ")
    if fields[0] != b"PROXY" or len(fields) < 2:
        raise ProxyError("malformed PROXY v1 header")
    if fields[1] == b"UNKNOWN":
        return None
    if fields[1] not in (b"TCP4", b"TCP6") or len(fields) != 6:
        raise ProxyError("malformed PROXY v1 header")
    try:
        source = ipaddress.ip_address(fields[2].decode("ascii"))
        port = int(fields[4])
    except (ValueError, UnicodeDecodeError):
        raise ProxyError("malformed PROXY v1 address") from None
    if source.version != (4 if fields[1] == b"TCP4" else 6) or not 0 <= port <= 65535:
        raise ProxyError("malformed PROXY v1 address")
    return str(source), port


def _read_v2(sock: socket.socket, start: bytes, deadline: float) -> Optional[Address]:
    head = start + _recv_exact(sock, 11, deadline)
    if head[:12] != V2_SIGNATURE:
        raise ProxyError("bad PROXY v2 signature")
    length = struct.unpack("!H", head[14:16])[0]
    if length > V2_MAX_PAYLOAD:
        raise ProxyError("PROXY v2 header too long")
    payload = _recv_exact(sock, length, deadline) if length else b""
    return parse_v2(head, payload)


def parse_v2(head: bytes, payload: bytes) -> Optional[Address]:
    version, command = head[12] >> 4, head[12] & 0x0F
    if version != 2 or command not in (0, 1):
        raise ProxyError("unsupported PROXY v2 version or command")
    if command == 0:
        return None                      # LOCAL: the proxy's own health check
    family = head[13]
    if family == 0x11:                   # TCP over IPv4
        return _v2_address(payload, 4)
    if family == 0x21:                   # TCP over IPv6
        return _v2_address(payload, 16)
    if family == 0x00:
        return None                      # UNSPEC: keep the socket's peer
    raise ProxyError("unsupported PROXY v2 address family")


def _v2_address(payload: bytes, size: int) -> Address:
    if len(payload) < 2 * size + 4:
        raise ProxyError("PROXY v2 address block too short")
    host = str(ipaddress.ip_address(payload[:size]))
    port = struct.unpack("!H", payload[2 * size:2 * size + 2])[0]
    return host, port


def build_v2(source: Address, destination: Address) -> bytes:
    """A PROXY v2 header (what HAProxy's send-proxy-v2 writes); for tests/tools."""
    family = socket.AF_INET6 if ":" in source[0] else socket.AF_INET
    packed = [socket.inet_pton(family, source[0]), socket.inet_pton(family, destination[0])]
    body = b"".join(packed) + struct.pack("!HH", source[1], destination[1])
    kind = 0x21 if family == socket.AF_INET6 else 0x11
    return V2_SIGNATURE + bytes([0x21, kind]) + struct.pack("!H", len(body)) + body


def build_v1(source: Address, destination: Address) -> bytes:
    kind = "TCP6" if ":" in source[0] else "TCP4"
    return (f"PROXY {kind} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode("ascii"))

