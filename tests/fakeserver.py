"""A hostile FTPD/1 peer for the client fuzz tests, and the replies it sends.

`HostileServer` plays a `Plan` on every connection (in-process, a thread,
loopback only): the greeting, then one chunk of bytes per request line the
client sends (chunk k once k lines have arrived), each chunk whatever
hypothesis made of it. `cut` closes the connection after that many bytes in
all, so a plan can end at any byte position. When the chunks run out the
server half-closes (the client reads EOF, never a reset) and drains what the
client still sends, so what the client sees depends on the plan alone.

The strategies below write replies the way a broken or malicious server
would: wrong counts, bodies too short or too long, oversized lines, names
that decode to escape sequences, `..`, absolute paths or NUL, huge and
negative numbers, wrong digests, replies nobody asked for.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from hypothesis import strategies as st

GREETING = b"OK FTPD/1 hostile\n"
IDLE_RELEASE = 0.3      # seconds: a chunk still due is sent anyway (a P's data has no LF)


@dataclass
class Plan:
    greeting: bytes = GREETING
    chunks: List[bytes] = field(default_factory=list)
    cut: Optional[int] = None        # close after this many bytes in all

    def stream(self) -> bytes:
        return self.greeting + b"".join(self.chunks)


class HostileServer:
    """Listens on 127.0.0.1; each connection plays `plan` (settable between runs)."""

    def __init__(self, plan: Optional[Plan] = None):
        self.plan = plan or Plan()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.received: List[bytes] = []        # what each connection sent, in order
        self.threads: List[threading.Thread] = []
        self.closing = threading.Event()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._play, args=(conn, self.plan), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _play(self, conn: socket.socket, plan: Plan) -> None:
        got = bytearray()
        self.received.append(b"")
        index = len(self.received) - 1
        budget = [len(plan.stream()) if plan.cut is None else plan.cut]
        try:
            conn.settimeout(IDLE_RELEASE)
            if self._send(conn, plan.greeting, budget):
                for number, chunk in enumerate(plan.chunks, start=1):
                    self._await_lines(conn, got, number)
                    self.received[index] = bytes(got)
                    if not self._send(conn, chunk, budget):
                        break
            conn.shutdown(socket.SHUT_WR)
            self._drain(conn, got)
        except OSError:
            pass
        finally:
            self.received[index] = bytes(got)
            conn.close()

    @staticmethod
    def _send(conn: socket.socket, data: bytes, budget: List[int]) -> bool:
        """Send what the cut allows; False once the cut is reached."""
        part = data[:max(budget[0], 0)]
        budget[0] -= len(part)
        if part:
            conn.sendall(part)
        return len(part) == len(data) and budget[0] > 0

    def _await_lines(self, conn: socket.socket, got: bytearray, count: int) -> None:
        while got.count(b"\n") < count and not self.closing.is_set():
            try:
                more = conn.recv(65536)
            except socket.timeout:
                return          # idle: a P's data has no LF, the reply is due anyway
            if not more:
                return
            got += more

    def _drain(self, conn: socket.socket, got: bytearray) -> None:
        while not self.closing.is_set():
            try:
                more = conn.recv(65536)
            except socket.timeout:
                continue
            if not more:
                return
            got += more[:65536 - len(got)] if len(got) < 65536 else b""

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for the connections played so far to end (the client has closed)."""
        for thread in self.threads:
            thread.join(timeout)

    def close(self) -> None:
        self.closing.set()
        try:
            self.listener.close()
        except OSError:
            pass
        self.wait_idle()

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- what a hostile server says ---------------------------------------------------------

# Names as they travel (percent-encoded), each decoding to something no valid
# name may be: an escape sequence, a path out of the directory, a line break,
# NUL, a dot-file, an absolute path, bad UTF-8, a broken escape, 256 bytes.
HOSTILE_NAMES = [
    b"%1B%5B31mRED", b"..%2F..%2Fevil.txt", b"a%0Ab", b"..", b".", b"%2Fetc%2Fpasswd",
    b"/etc/passwd", b"a%00b", b".hidden", b"%FF%FE", b"%", b"%G1", b"a/b", b"x" * 256,
    b"\x1b[2J", b"a\rb", b"%7F", b"%0D%0Aerased",
]
# Valid names that a terminal could still misread if printed raw (C1 CSI,
# right-to-left override) or that look like paths when printed.
TRICKY_NAMES = [b"%C2%9B31mRED", b"%E2%80%AEtxt.exe", b"..%E2%80%A4", b"~", b"-rf", b"%25"]
VALID_NAMES = [b"a.txt", b"report%202026.pdf", b"caf%C3%A9", b"photos/"]

NUMBERS = [b"0", b"1", b"7", b"4096", b"9223372036854775807", b"9223372036854775808",
           b"99999999999999999999999999", b"-1", b"-5", b"+3", b"0x10", b"1e3", b"",
           b"\xc2\xb2", b"\xd9\xa1\xd9\xa2", b"1.5", b"10000000"]
ESCAPES = [b"\x1b[31mRED\x1b[0m", b"\x1b]0;pwned\x07", b"\x1b[2J\x1b[H", b"\x07\x08\x0c",
           b"\x00", b"\r", b"\t", b"\xc2\x9b31m", b"\xe2\x80\xae", b"\xff\xfe", b"\x7f"]

def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def text() -> st.SearchStrategy[bytes]:
    """Free text a server might put in a reply: anything but LF, escapes likely."""
    plain = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))
    return st.lists(st.one_of(plain, st.sampled_from(ESCAPES)), max_size=4).map(b"".join)


def number() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(NUMBERS), st.integers(0, 5000).map(lambda n: b"%d" % n))


def name() -> st.SearchStrategy[bytes]:
    return st.sampled_from(HOSTILE_NAMES + TRICKY_NAMES + VALID_NAMES)


def digest(data: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([sha(data), sha(data).upper(), sha(b"other"), sha(data)[:63],
                            b"z" * 64, sha(data) + b" extra", b""])


def error_line() -> st.SearchStrategy[bytes]:
    code = st.sampled_from([b"400", b"401", b"404", b"408", b"413", b"421", b"500", b"999",
                            b"4040", b"40", b"abc"])
    return st.builds(lambda c, t: b"ERR " + c + b" " + t + b"\n", code, text())


def junk_line() -> st.SearchStrategy[bytes]:
    """A line that is no reply at all, or a reply line too long to be one."""
    return st.one_of(
        text().map(lambda t: t + b"\n"),
        st.sampled_from([b"220 (vsFTPd 3.0.3)\r\n", b"SSH-2.0-OpenSSH_9.6\r\n",
                         b"HTTP/1.1 400 Bad Request\r\n", b"OK\n", b"OK \n", b"ok 1\n",
                         b"\n", b"OK 1", b"ERR\n"]),
        st.integers(4097, (1 << 20) + 10).map(lambda n: b"OK " + b"9" * n + b"\n"))


def row() -> st.SearchStrategy[bytes]:
    good = st.builds(lambda s, m, n: s + b" " + m + b" " + n + b"\n",
                     st.one_of(number(), st.just(b"-")), number(), name())
    return st.one_of(good, junk_line())


def listing() -> st.SearchStrategy[bytes]:
    """OK n and rows: n right, wrong, huge; rows well-formed or not."""
    def build(rows: List[bytes], announced: Optional[bytes]) -> bytes:
        count = announced if announced is not None else b"%d" % len(rows)
        return b"OK " + count + b"\n" + b"".join(rows)
    return st.builds(build, st.lists(row(), max_size=5), st.one_of(st.none(), number()))


def file_reply(data: bytes) -> st.SearchStrategy[bytes]:
    """G's reply for `data`: the right count, or one that lies either way."""
    counts = st.one_of(st.just(b"%d" % len(data)), number())
    return st.builds(lambda n, extra: b"OK " + n + b"\n" + data + extra, counts,
                     st.sampled_from([b"", b"OK 1\n999 0 evil.exe\n", b"trailing"]))


def hash_reply(data: bytes) -> st.SearchStrategy[bytes]:
    size = st.one_of(st.just(b"%d" % len(data)), number())
    return st.builds(lambda s, d: b"OK " + s + b" " + d + b"\n", size, digest(data))


def any_reply(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(hash_reply(data), file_reply(data), listing(), error_line(), junk_line(),
                     st.builds(lambda t: b"OK " + t + b"\n", text()),
                     st.just(b"OK ready\n"))


def greeting() -> st.SearchStrategy[bytes]:
    hostile = st.one_of(st.builds(lambda t: b"OK FTPD/1 " + t + b"\n", text()), error_line(),
                        junk_line())
    return st.one_of(st.just(GREETING), st.just(GREETING), hostile)


def plans(replies: st.SearchStrategy[List[bytes]]) -> st.SearchStrategy[Plan]:
    """A greeting (usually a proper one), `replies`, maybe a cut anywhere."""
    @st.composite
    def build(draw: st.DrawFn) -> Plan:
        plan = Plan(draw(greeting()), draw(replies))
        if draw(st.booleans()):
            plan.cut = draw(st.integers(0, len(plan.stream())))
        return plan
    return build()


def get_plans(data: bytes) -> st.SearchStrategy[Plan]:
    """Replies for a verified get: H and G (pipelined: one chunk or two)."""
    pair = st.tuples(st.one_of(hash_reply(data), any_reply(data)),
                     st.one_of(file_reply(data), any_reply(data)))
    shapes = st.one_of(pair.map(lambda p: [p[0] + p[1]]), pair.map(list))
    return plans(shapes)


def data_strategy() -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(b""), st.binary(min_size=1, max_size=64),
                     st.just(b"OK 1\n999 0 evil.exe\n"))


def any_plans() -> st.SearchStrategy[Tuple[bytes, Plan]]:
    return data_strategy().flatmap(
        lambda data: st.tuples(st.just(data), plans(st.lists(any_reply(data), max_size=6))))
