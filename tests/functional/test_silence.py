"""Silence costs no slot for long: first_request_timeout ends a session that
never sends a request, and the parent drops new connections early (before
any fork) while too many sessions are silent, so a flood of silent
connections cannot lock real clients out."""

import os
import socket
import time

import pytest

from ftpd.client import Client, ServerError
from ftpd.server import silence
from tests.harness import read_reply, wait_until

EARLY_DROP = b"ERR 421 too many connections waiting for a first request, try again\n"


# -- the policy and the shared table ---------------------------------------------------

def test_no_drop_up_to_sixty_percent_then_rising_to_certain_at_the_limit():
    assert silence.drop_probability(0, 200) == 0.0
    assert silence.drop_probability(120, 200) == 0.0
    rising = [silence.drop_probability(s, 200) for s in range(120, 201)]
    assert rising == sorted(rising) and 0 < rising[1] < 0.05
    assert silence.drop_probability(160, 200) == pytest.approx(0.5)
    assert silence.drop_probability(200, 200) == 1.0
    assert silence.drop_probability(250, 200) == 1.0


def test_early_drop_draws_only_above_the_start():
    def never_called():
        raise AssertionError("drew a number below the start")

    assert not silence.early_drop(120, 200, draw=never_called)
    assert silence.early_drop(160, 200, draw=lambda: 0.49)
    assert not silence.early_drop(160, 200, draw=lambda: 0.51)
    assert silence.early_drop(200, 200, draw=lambda: 0.999)


def test_a_forked_session_tells_the_parent_through_its_slot():
    startups = silence.Startups(3)
    slots = [startups.claim() for _ in range(3)]
    for ident, slot in enumerate(slots):
        startups.track(ident, slot)
    assert startups.silent() == 3
    pid = os.fork()
    if pid == 0:
        slots[1].mark_spoken()
        os._exit(0)
    os.waitpid(pid, 0)
    assert [slot.silent for slot in slots] == [True, False, True]
    assert startups.silent() == 2
    startups.forget(1)
    again = startups.claim()          # the freed slot, silent again for its new session
    assert again.index == 1 and again.silent


def test_a_reload_to_another_limit_keeps_live_slots_readable():
    startups = silence.Startups(2)
    old = startups.claim()
    startups.track(7, old)
    startups.resize(5)
    old.mark_spoken()
    assert startups.silent() == 0 and startups.table.slots == 5
    startups.forget(7)
    assert len(startups.claim().table.free) == 4


# -- first_request_timeout ---------------------------------------------------------------

def test_a_silent_or_trickling_client_is_closed_after_the_first_request_timeout(make_daemon):
    daemon = make_daemon({"server": {"first_request_timeout": 1.5, "idle_timeout": 60}})
    silent = daemon.greeted()
    trickler = daemon.greeted()
    talker = daemon.greeted()
    started = time.monotonic()
    talker.sendall(b"L\n")
    assert read_reply(talker) == b"OK 0\n"
    for _ in range(4):                        # bytes, never a whole line
        trickler.sendall(b"L")
        time.sleep(0.3)
    for sock in (silent, trickler):
        assert read_reply(sock, timeout=15) == b"ERR 408 no request in time\n"
        sock.settimeout(10)
        assert sock.recv(16) == b""
    assert time.monotonic() - started < 12, "first_request_timeout not applied"
    time.sleep(max(0.0, started + 2.0 - time.monotonic()))
    talker.sendall(b"L\n")                    # past the first deadline: idle_timeout rules
    assert read_reply(talker) == b"OK 0\n"
    for sock in (silent, trickler, talker):
        sock.close()


# -- the flood -----------------------------------------------------------------------------

MAX_CLIENTS = 200
SILENT = 190
FIRST_REQUEST = 20.0
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


def open_silent(daemon, count):
    """`count` connections from four addresses that never send a byte;
    (greeted sockets, refusal lines)."""
    greeted, refused = [], []
    for number in range(count):
        sock = socket.create_connection((daemon.host, daemon.port), timeout=30,
                                        source_address=(SOURCES[number % 4], 0))
        first = read_reply(sock, timeout=30)
        if first.startswith(b"OK FTPD/1 "):
            greeted.append(sock)
        else:
            refused.append(first)
            sock.close()
    return greeted, refused


def real_client_gets_in(daemon, deadline):
    """Retry on ERR 421, as a client does; served once in."""
    for _ in range(200):
        assert time.monotonic() < deadline, "flood too slow to test while held"
        try:
            with Client(daemon.host, daemon.port, timeout=10) as client:
                return client.list()
        except ServerError as exc:
            assert exc.code == 421, exc
            time.sleep(0.02)
    raise AssertionError("the real client never got in")


def test_190_silent_connections_do_not_lock_out_a_real_client(make_daemon, concurrency):
    daemon = make_daemon({"server": {"max_clients": MAX_CLIENTS, "max_clients_per_ip": 50,
                                     "first_request_timeout": FIRST_REQUEST,
                                     "idle_timeout": 300}})
    (daemon.root / "seen.txt").write_bytes(b"x")
    started = time.monotonic()
    greeted, refused = open_silent(daemon, SILENT)
    try:
        # Nothing is refused below 60%, something is above it, all by the early drop.
        assert int(MAX_CLIENTS * silence.EARLY_DROP_START) < len(greeted) < SILENT
        assert refused and set(refused) == {EARLY_DROP}
        assert daemon.log().count("waiting for a first request") == len(refused)
        if concurrency == "fork":        # refused before any fork
            wait_until(lambda: len(daemon.children()) == len(greeted), what="one child each")
        listing = real_client_gets_in(daemon, started + FIRST_REQUEST)
        assert [row.name for row in listing] == ["seen.txt"]
        for sock in greeted:
            assert read_reply(sock, timeout=FIRST_REQUEST + 30) == \
                b"ERR 408 no request in time\n"
        assert time.monotonic() - started < FIRST_REQUEST + 30
    finally:
        for sock in greeted:
            sock.close()
    wait_until(lambda: daemon.log().count("session end") >= len(greeted) + 1, timeout=30,
               what="every silent session to end")
    wait_until(lambda: not daemon.children(), timeout=30, what="silent sessions reaped")
    assert not daemon.zombies()
    wait_until(daemon.serves_a_client, timeout=10, what="no silence left: a client gets in")
