"""Listening sockets: bind the configured addresses, describe them."""

from __future__ import annotations

import socket
from typing import Dict, Iterable, List, Tuple

from ftpd.config import Address


class BindError(Exception):
    def __init__(self, address: Address, reason: str):
        super().__init__(f"cannot listen on {format_address(address)}: {reason}")
        self.address = address


def format_address(address: Tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_address(address: Address, backlog: int) -> List[socket.socket]:
    host, port = address
    try:
        infos = socket.getaddrinfo(None if host in ("", "*") else host, port,
                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(address, exc.strerror or str(exc)) from exc
    sockets: List[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, sockaddr in infos:
            if sockaddr in seen:
                continue
            seen.add(sockaddr)
            sockets.append(_listen(family, kind, proto, sockaddr, backlog))
    except OSError as exc:
        close_all(sockets)
        raise BindError(address, exc.strerror or str(exc)) from exc
    return sockets


def _listen(family: int, kind: int, proto: int, sockaddr: Tuple, backlog: int) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # One socket per configured address: [::] must not swallow 0.0.0.0.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind_all(addresses: Iterable[Address], backlog: int) -> Dict[Address, List[socket.socket]]:
    bound: Dict[Address, List[socket.socket]] = {}
    try:
        for address in addresses:
            bound[address] = bind_address(address, backlog)
    except BindError:
        for sockets in bound.values():
            close_all(sockets)
        raise
    return bound


def close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


def describe(sock: socket.socket) -> str:
    return format_address(sock.getsockname())
