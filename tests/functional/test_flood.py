"""Connection floods: with every slot held by silent clients the parent still
answers at once, refuses the excess without forking, and the idle timeout
frees the slots."""

import socket
import threading
import time

from tests.harness import fork_only, read_reply, wait_until

MAX_CLIENTS = 5
IDLE = 4.0
FLOOD = 30


class ChildCounter(threading.Thread):
    """Samples the parent's live children until stopped; keeps the maximum."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.target, self.peak, self.done = daemon, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, len(self.target.live_children()))
            time.sleep(0.005)


@fork_only
def test_flood_is_refused_by_the_parent_and_idle_slots_are_freed(make_daemon):
    daemon = make_daemon({"server": {"max_clients": MAX_CLIENTS, "idle_timeout": IDLE,
                                     "max_clients_per_ip": 100}})
    counter = ChildCounter(daemon)
    counter.start()
    holders = []
    try:
        for _ in range(MAX_CLIENTS):    # one at a time, each spoken: idle, not silent
            sock = daemon.connect(timeout=IDLE + 20)    # (silence: test_silence.py)
            holders.append(sock)
            assert read_reply(sock).startswith(b"OK FTPD/1")
            sock.sendall(b"L\n")
            assert read_reply(sock) == b"OK 0\n"
        wait_until(lambda: len(daemon.live_children()) == MAX_CLIENTS, what="full house")
        held_since = time.monotonic()
        trickler = holders[0]
        slowest = 0.0
        for number in range(FLOOD):
            if number % 8 == 0:
                trickler.send(b"L")          # bytes, never a whole line
            started = time.monotonic()
            with daemon.connect(timeout=10) as extra:
                assert read_reply(extra, timeout=10).startswith(b"ERR 421 ")
                extra.settimeout(10)
                assert extra.recv(1) == b""
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 5.0, f"the parent took {slowest:.1f}s to refuse a client"
        assert time.monotonic() - held_since < IDLE, "flood too slow to test while held"
        for sock in holders:
            assert read_reply(sock, timeout=IDLE + 15) == b"ERR 408 idle timeout\n"
        freed_after = time.monotonic() - held_since
    finally:
        for sock in holders:
            sock.close()
    wait_until(lambda: not daemon.children(), timeout=15, what="slots to free (reaped)")
    counter.done.set()
    counter.join(5)
    assert counter.peak == MAX_CLIENTS
    assert freed_after < IDLE + 10
    refusals = [line for line in daemon.log().splitlines() if "too many clients" in line]
    assert len(refusals) == FLOOD
    assert all(f"ftpd[{daemon.pid}]" in line for line in refusals)     # the parent said no
    with daemon.client() as c:
        assert c.list() == []


def test_clients_that_connect_and_vanish_cost_nothing_lasting(make_daemon):
    daemon = make_daemon({"server": {"max_clients": MAX_CLIENTS}})
    fds = daemon.num_fds()
    for _ in range(60):
        sock = socket.create_connection((daemon.host, daemon.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()                         # RST at once
    wait_until(lambda: not daemon.live_children(), timeout=20, what="sessions to end")
    wait_until(lambda: not daemon.zombies(), timeout=20, what="children to be reaped")
    wait_until(lambda: daemon.num_fds() == fds, timeout=10,
               what=f"the parent's fds to return to {fds}")
    assert daemon.proc.poll() is None, daemon.log()[-2000:]
    wait_until(daemon.serves_a_client, what="a new client to be served")
