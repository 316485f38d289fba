"""A tiny HTTP/1.0 responder run by the parent's own loop: GET /metrics.

Why not prometheus_client.start_http_server: it serves from a thread, and
the parent forks a session per client. A thread running at fork time may
hold a lock (the logging module's, an allocator's) that the child then
inherits locked, forever. So the endpoint lives in the parent's selector
like the listeners: a non-blocking listener, at most MAX_CONNECTIONS
scrapes at once, each bounded in request size and in time, answered with
one non-blocking write (the rest when the socket is writable again). The
parent never blocks on a scraper.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

log = logging.getLogger("ftpd.server")

MAX_CONNECTIONS = 8          # scrapes served at once; more are closed at accept
MAX_REQUEST = 8192           # bytes of request line and headers
REQUEST_TIME = 5.0           # seconds a scrape may take, request and answer
ACCEPTS_PER_WAKEUP = 16
PATH = b"/metrics"
# The classic text format (what generate_latest writes in every version).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Scrape:
    sock: socket.socket
    deadline: float
    request: bytes = b""
    answer: bytes = b""
    answering: bool = False


def response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8"
             ) -> bytes:
    head = (f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def answer_for(request: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole answer to one request (its head is all we read)."""
    parts = request.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return response("400 Bad Request", b"bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target != PATH:
        return response("404 Not Found", b"only /metrics here\n")
    if method != b"GET":
        return response("405 Method Not Allowed", b"GET only\n")
    return response("200 OK", render(), CONTENT_TYPE)


class Endpoint:
    """The listening sockets and the scrapes in progress, on `selector`."""

    def __init__(self, sockets: List[socket.socket], render: Callable[[], bytes],
                 selector: selectors.BaseSelector):
        self.sockets: List[socket.socket] = []
        self.render = render
        self.selector = selector
        self.scrapes: Dict[int, Scrape] = {}
        self.listen_on(sockets)

    def listen_on(self, sockets: List[socket.socket]) -> None:
        """Serve on `sockets` from now on, closing the ones before."""
        self.close_listeners()
        self.sockets = sockets
        for sock in sockets:
            self.selector.register(sock, selectors.EVENT_READ,
                                   lambda events, sock=sock: self.accept(sock))

    def accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("metrics: accept failed: %s", exc)
                return
            if len(self.scrapes) >= MAX_CONNECTIONS:
                conn.close()
                continue
            conn.setblocking(False)
            scrape = Scrape(conn, time.monotonic() + REQUEST_TIME)
            self.scrapes[conn.fileno()] = scrape
            self.selector.register(conn, selectors.EVENT_READ,
                                   lambda events, s=scrape: self.service(s))

    def service(self, scrape: Scrape) -> None:
        try:
            if scrape.answering:
                self.write(scrape)
            else:
                self.read(scrape)
        except OSError:
            self.finish(scrape)

    def read(self, scrape: Scrape) -> None:
        data = scrape.sock.recv(MAX_REQUEST + 1 - len(scrape.request))
        scrape.request += data
        ended = b"\r\n\r\n" in scrape.request or b"\n\n" in scrape.request
        if not data or len(scrape.request) > MAX_REQUEST:
            scrape.answer = response("400 Bad Request", b"request too long or cut\n")
        elif not ended:
            return
        else:
            scrape.answer = answer_for(scrape.request, self.render)
        scrape.answering = True
        self.selector.modify(scrape.sock, selectors.EVENT_WRITE,
                             lambda events, s=scrape: self.service(s))
        self.write(scrape)

    def write(self, scrape: Scrape) -> None:
        sent = scrape.sock.send(scrape.answer)
        scrape.answer = scrape.answer[sent:]
        if not scrape.answer:
            scrape.sock.shutdown(socket.SHUT_WR)
            self.finish(scrape)

    def finish(self, scrape: Scrape) -> None:
        if self.scrapes.pop(scrape.sock.fileno(), None) is None:
            return
        try:
            self.selector.unregister(scrape.sock)
        except (KeyError, ValueError):
            pass
        scrape.sock.close()

    def expire(self, now: float) -> None:
        for scrape in [s for s in self.scrapes.values() if now >= s.deadline]:
            self.finish(scrape)

    def close_listeners(self) -> None:
        for sock in self.sockets:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.sockets = []

    def close(self) -> None:
        for scrape in list(self.scrapes.values()):
            self.finish(scrape)
        self.close_listeners()

    def close_in_child(self) -> None:
        """The parent's selector is closed by the parent's code: only the fds."""
        for sock in self.sockets + [s.sock for s in self.scrapes.values()]:
            sock.close()
        self.sockets, self.scrapes = [], {}
