"""A bounded fuzz run against a live daemon: random and mutated requests never
kill the parent, never crash a session, never leave a stray file and never
return a byte from outside the library.

Deterministic by default; FTPD_FUZZ_SEED=<n> explores another sequence."""

import os
import random
import socket
import time

import pytest

from ftpd.server import auth
from ftpd import protocol
from ftpd.server.library import TEMP_PREFIX
from tests.harness import recv_all, wait_until

CANARY = b"CANARY-" + os.urandom(8).hex().encode()
CONNECTIONS = 150
TIME_BUDGET = 20.0           # seconds of fuzzing at most, whatever the machine
TEMPLATES = [
    b"L", b"Q", b"G hello.txt", b"G hello.txt 3", b"G hello.txt 999", b"H hello.txt",
    b"G link", b"H link", b"G sub", b"G %2E%2E%2Foutside%2Fcanary", b"G ..%2Foutside",
    b"P new.bin 5", b"P new%20file 3 " + b"a" * 64, b"P hello.txt 0", b"P link 4",
    b"A alice pw", b"A alice wrong", b"A %00 %00", b"G %C3%A9t%C3%A9", b"P .hidden 1",
]
SPICE = [b" ", b"%", b"%2F", b"%00", b"\r", b"\n", b"\xff", b"9" * 25, b"-1", b"..", b"/",
         b"%ZZ", b"\x00", b"P", b"G", b"\t"]


def mutate(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(data))
        action = rng.randrange(6)
        if action == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            data[pos:pos] = rng.choice(SPICE)
        elif action == 2:
            del data[pos:pos + rng.randint(1, 4)]
        elif action == 3:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action == 4:
            data = data[:pos]
        else:
            data = data.swapcase() if rng.random() < 0.5 else data + data
    return bytes(data)


def random_request(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
    if roll < 0.18:
        return b"G " + b"a" * rng.randint(4090, 6000)          # over the line limit
    line = rng.choice(TEMPLATES)
    return line if roll < 0.3 else mutate(rng, line)


def session_bytes(rng: random.Random) -> bytes:
    eol = b"\r\n" if rng.random() < 0.3 else b"\n"
    body = eol.join(random_request(rng) for _ in range(rng.randint(1, 8)))
    if rng.random() < 0.8:
        body += eol
    if rng.random() < 0.3:
        body += os.urandom(rng.randint(1, 64))      # bytes an upload may swallow
    return body


def exchange(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=15) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass          # the server may close first (line too long, 421)
        return recv_all(sock, timeout=15, reset_ends=True)


@pytest.fixture
def target(make_daemon, tmp_path):
    users = tmp_path / "users"
    users.write_text(auth.make_record("alice", "write", "pw", auth.Cost(10, 8, 1)).line() + "\n")
    daemon = make_daemon({"server": {"chroot": "no", "idle_timeout": 3, "data_timeout": 3},
                          "files": {"max_file_size": "64K", "min_free_space": 0},
                          "access": {"users_file": users, "login_failure_delay": 0,
                                     "max_login_failures": 5}}, start=False)
    outside = daemon.workdir / "outside"
    outside.mkdir()
    (outside / "canary").write_bytes(CANARY)
    daemon.root.mkdir()
    (daemon.root / "hello.txt").write_bytes(b"hello world\n")
    (daemon.root / "link").symlink_to(outside / "canary")
    (daemon.root / "sub").mkdir()
    (daemon.root / "sub" / "inner").write_bytes(CANARY)
    daemon.start()
    return daemon, outside


def test_fuzzed_sessions_do_no_harm(target):
    daemon, outside = target
    seed = int(os.environ.get("FTPD_FUZZ_SEED", "20240601"))
    rng = random.Random(seed)
    fds_before = daemon.num_fds()
    deadline = time.monotonic() + TIME_BUDGET
    sent = 0
    while sent < CONNECTIONS and time.monotonic() < deadline:
        payload = session_bytes(rng)
        reply = exchange(daemon.host, daemon.port, payload)
        sent += 1
        assert CANARY not in reply, f"seed {seed}: outside bytes served for {payload!r}"
        assert b"ERR 500" not in reply, f"seed {seed}: internal error for {payload!r}"
        assert daemon.proc.poll() is None, f"seed {seed}: parent died on {payload!r}"
    assert sent >= 20, "the machine is too slow to fuzz meaningfully"
    wait_until(lambda: not daemon.live_children(), timeout=20, what="sessions to end")

    assert "crashed" not in daemon.log() and "Traceback" not in daemon.log()
    assert daemon.num_fds() == fds_before
    assert sorted(os.listdir(outside)) == ["canary"]
    assert (outside / "canary").read_bytes() == CANARY
    for entry in os.scandir(daemon.root):
        assert not entry.name.startswith(TEMP_PREFIX), f"stray upload temp {entry.name}"
        if entry.name not in ("link", "sub"):
            assert protocol.is_valid_name(entry.name) and entry.is_file(follow_symlinks=False)
    assert os.listdir(daemon.root / "sub") == ["inner"]
    with daemon.client() as c:
        assert "hello.txt" in [e.name for e in c.list()]
