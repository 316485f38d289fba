"""The session side of a spawn, in this process: a fake process layer and a
fake guard record the steps, a real session serves over a socketpair."""

import signal
import socket

import pytest

from ftpd import config as config_mod
from ftpd.server import child
from ftpd.server.child import ChildOps, SessionStart, StopFlag
from ftpd.server.library import Library

PEER = ("10.0.0.9", 4711)


def read_reply(sock):
    """One reply line, read a byte at a time so nothing after it is consumed."""
    sock.settimeout(5)
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


class Exited(Exception):
    """Stands in for os._exit, which a test process cannot call."""


class RecordingOps(ChildOps):
    def __init__(self, events):
        self.events = events

    def set_handler(self, signum, handler):
        name = "default" if handler == signal.SIG_DFL else "handler"
        self.events.append(f"{name} {signal.Signals(signum).name}")

    def set_wakeup_fd(self, fd):
        self.events.append("wakeup cleared" if fd == -1 else "wakeup to stop flag")

    def prestart(self):
        self.events.append("hash helper")

    def exit(self, code):
        self.events.append(f"exit {code}")
        raise Exited()


class RecordingGuard:
    def __init__(self, events, confine_error=None):
        self.events = events
        self.confine_error = confine_error
        self.accounts = None

    def confine(self, library_fd):
        self.events.append("confine")
        if self.confine_error is not None:
            raise self.confine_error

    def handshake(self, conn, peer):
        self.events.append(f"handshake {peer}")
        return conn


class RecordingPeers:
    def __init__(self, events):
        self.events = events

    def admit(self, address, limit):
        self.events.append(f"admit {address}")
        return 3

    def release(self, slot):
        self.events.append(f"release {slot}")


@pytest.fixture
def library(tmp_path):
    lib = Library(str(tmp_path))
    yield lib
    lib.close()


def make_start(events, library, guard=None, proxied=False):
    config = config_mod.build({("server", "proxy_protocol"): "yes" if proxied else "no"})
    return SessionStart(config, guard or RecordingGuard(events), library,
                        RecordingPeers(events) if proxied else None,
                        title=lambda text: events.append(f"title {text.split(' ', 2)[2]}"))


def tcp_pair():
    """A connected loopback TCP pair: the child sets TCP options on its end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server_end, _ = listener.accept()
    return server_end, client


def test_a_forked_child_resets_confines_reads_the_header_then_greets_and_exits(library):
    events = []
    server_end, client = tcp_pair()
    client.sendall(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 21\r\n")
    with client:
        client.sendall(b"Q\n")
        with pytest.raises(Exited):
            child.run_as_process(make_start(events, library, proxied=True), server_end, PEER,
                                 release_parent=lambda: events.append("parent fds closed"),
                                 ops=RecordingOps(events))
        greeting, bye = read_reply(client), read_reply(client)
    assert greeting.startswith(b"OK FTPD/1") and bye == b"OK bye\n"
    resets = [f"default {sig.name}" for sig in child.RESET_SIGNALS]
    reports = [e for e in events if e.startswith("title anonymous /: ")]
    assert "title anonymous /: idle (0 bytes)" in reports      # the session titles its process
    assert [e for e in events if e not in reports] == resets + [
        "wakeup cleared", "parent fds closed", "handler SIGTERM", "wakeup to stop flag",
        "hash helper", "confine", "admit 192.0.2.7", "handshake 192.0.2.7:5555",
        "title -: starting", "release 3", "exit 0"]
    server_end.close()


def test_a_child_that_fails_before_its_session_still_leaves_through_exit(library, caplog):
    events = []
    guard = RecordingGuard(events, confine_error=PermissionError("setuid"))
    server_end, client = tcp_pair()
    with client, server_end:
        with pytest.raises(Exited):
            child.run_as_process(make_start(events, library, guard), server_end, PEER,
                                 release_parent=lambda: None, ops=RecordingOps(events))
        client.settimeout(5)
        server_end.close()
        assert client.recv(100) == b""              # never greeted
    assert events[-2:] == ["confine", "exit 70"]
    assert "session 10.0.0.9:4711 crashed" in caplog.text


def test_a_session_thread_neither_confines_nor_retitles_the_process(library):
    events = []
    stop = StopFlag()
    server_end, client = tcp_pair()
    with client, server_end:
        client.sendall(b"Q\n")
        assert child.run_as_thread(make_start(events, library), server_end, PEER, stop) == 0
        greeting, bye = read_reply(client), read_reply(client)
    stop.close()
    assert greeting.startswith(b"OK FTPD/1") and bye == b"OK bye\n"
    assert events == ["handshake 10.0.0.9:4711"]


def test_a_real_client_over_its_limit_behind_the_balancer_is_refused(library):
    events = []
    start = make_start(events, library, proxied=True)
    start.peers.admit = lambda address, limit: events.append(f"admit {address}")   # -> None
    stop = StopFlag()
    server_end, client = tcp_pair()
    with client, server_end:
        client.sendall(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 21\r\n")
        assert child.run_as_thread(start, server_end, PEER, stop) == 0
        client.settimeout(5)
        assert client.recv(100) == b"ERR 421 too many connections from your address\n"
    stop.close()
    assert events == ["admit 192.0.2.7"]            # no handshake, no session, no release
