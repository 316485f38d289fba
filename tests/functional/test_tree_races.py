"""Races against the tree, with the real daemon in both models: a directory
swapped for a symlink to the outside while requests run, and a directory
renamed or deleted while an upload into it is in flight."""

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from tests.harness import read_reply, wait_until
from tests.functional.test_tree import ask

SWAP_SECONDS = 3.0
SWAP_LIMIT = 200_000          # swaps at most, whichever bound comes first
SECRET = b"outside the root: must never be served"


def snapshot(top: Path) -> Dict[str, bytes]:
    """Every file below `top` (not following links) with its content."""
    found = {}
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(top))] = b"<link>" if path.is_symlink() else \
                path.read_bytes()
    return found


def swapper(root: Path, outside: Path, stop: threading.Event, counts: List[int]) -> None:
    """Swap root/d for a symlink to `outside` and back, as fast as it can."""
    real, link = root / ".d-real", root / ".d-link"
    link.symlink_to(outside)
    for _ in range(SWAP_LIMIT):
        if stop.is_set():
            break
        os.rename(root / "d", real)
        os.rename(link, root / "d")           # d is now the symlink
        os.rename(root / "d", link)
        os.rename(real, root / "d")           # d is the directory again
        counts[0] += 1


def requests_during_swaps(sock, deadline: float) -> List[bytes]:
    """Every verb at d/..., again and again; returns the replies and data seen."""
    seen = []
    data = b"written through d"
    digest = hashlib.sha256(data).hexdigest().encode()
    while time.monotonic() < deadline:
        for line in (b"G d/f\n", b"H d/f\n", b"L d\n", b"L d/f\n", b"M d/sub\n",
                     b"D d/sub\n", b"R d/f d/g\n", b"R d/g d/f\n", b"D d/new\n"):
            reply = ask(sock, line)
            seen.append(reply)
            if line.startswith(b"G") and reply.startswith(b"OK "):
                seen.append(sock.recv(int(reply.split()[1]), socket.MSG_WAITALL))
            elif line.startswith(b"L") and reply.startswith(b"OK "):
                seen += [read_reply(sock) for _ in range(int(reply.split()[1]))]
        reply = ask(sock, b"P d/new %d %s\n" % (len(data), digest))
        seen.append(reply)
        if reply == b"OK ready\n":
            sock.sendall(data)
            seen.append(read_reply(sock))
    return seen


def test_a_directory_swapped_for_a_symlink_never_leads_outside(make_daemon, tmp_path):
    daemon = make_daemon(start=False)
    outside = tmp_path / "outside"
    (outside / "osub").mkdir(parents=True)
    for path in (outside / "f", outside / "g", outside / "new", outside / "osub" / "keep"):
        path.write_bytes(SECRET)
    before = snapshot(outside)
    (daemon.root / "d").mkdir(parents=True)
    (daemon.root / "d" / "f").write_bytes(b"inside")
    daemon.start()
    stop, counts = threading.Event(), [0]
    thread = threading.Thread(target=swapper, args=(daemon.root, outside, stop, counts))
    thread.start()
    try:
        with daemon.greeted() as sock:
            seen = requests_during_swaps(sock, time.monotonic() + SWAP_SECONDS)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert counts[0] > 100, counts                    # the race really ran
    assert not any(SECRET in item for item in seen)
    assert not any(b" osub/" in item for item in seen)   # outside rows never listed
    assert snapshot(outside) == before                # nothing written, moved or removed
    assert sum(r.startswith(b"OK") for r in seen) > 0
    assert {r[:8] for r in seen if r.startswith(b"ERR")} <= {b"ERR 404 ", b"ERR 409 "}


UPLOAD = 2_000_000


def upload_until_half(daemon):
    """A session that has sent `P up/big` and half of its bytes."""
    (daemon.root / "up").mkdir()
    sock = daemon.greeted()
    assert ask(sock, b"P up/big %d\n" % UPLOAD) == b"OK ready\n"
    sock.sendall(b"y" * (UPLOAD // 2))
    return sock


def finish(sock) -> bytes:
    sock.sendall(b"y" * (UPLOAD - UPLOAD // 2))
    reply = read_reply(sock, timeout=30)
    sock.close()
    return reply


def every_file(root: Path) -> List[str]:
    """All files below root, hidden temps included."""
    return sorted(snapshot(root))


@pytest.mark.parametrize("meanwhile, outcome, files", [
    # moved away: the named directory is gone, so nothing is stored anywhere
    ([(b"R up moved", b"OK"), (b"L moved", b"OK 0")], b"ERR 404 ", []),
    # moved away and a new one made: the file lands at the named path only
    ([(b"R up old", b"OK"), (b"M up", b"OK")], b"OK 2000000 ", ["up/big"]),
    # the unfinished upload is in the directory, so it is not empty
    ([(b"D up", b"ERR 409 ")], b"OK 2000000 ", ["up/big"]),
])
def test_a_directory_changed_during_an_upload(daemon, meanwhile, outcome, files):
    sock = upload_until_half(daemon)
    with daemon.greeted() as other:
        for request, reply in meanwhile:
            assert ask(other, request + b"\n").startswith(reply), request
    assert finish(sock).startswith(outcome)
    assert every_file(daemon.root) == files         # no partial file, no temp, anywhere


def test_an_upload_cut_off_after_its_directory_moved_leaves_nothing(daemon):
    sock = upload_until_half(daemon)
    with daemon.greeted() as other:
        assert ask(other, b"R up moved\n") == b"OK\n"
        sock.close()                                       # the client vanishes
        wait_until(lambda: not os.listdir(daemon.root / "moved"), what="the temp to go")
        assert ask(other, b"D moved\n") == b"OK\n"
    assert every_file(daemon.root) == []
