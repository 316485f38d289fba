"""Resumable uploads (C): a cut upload is kept hidden, continued with only
the rest, verified whole, and removed when it expires."""

import hashlib
import os
import time
from typing import List

import pytest

from ftpd.client import ServerError
from tests.harness import read_reply, wait_until
from tests.ftpc_util import Relay, run_ftpc

SIZE = 1_000_000
CUT = 300_000


def payload(seed: int = 1) -> bytes:
    return hashlib.sha256(bytes([seed])).digest() * (SIZE // 32) + b"!" * (SIZE % 32)


def hidden(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".ftpd~partial~"))


def cut_upload(daemon, name: str, data: bytes, count: int, digest=None) -> None:
    """Start `C` and drop the connection after `count` bytes; wait until the
    server has noted the cut (its transfer log line)."""
    digest = digest or hashlib.sha256(data).hexdigest()
    sock = daemon.greeted()
    sock.sendall(f"C {name} {len(data)} {digest}\n".encode())
    assert read_reply(sock) == b"OK 0\n"
    sock.sendall(data[:count])
    sock.close()
    wait_until(lambda: f"kept {count} bytes" in daemon.log(), what="the cut to be noted")


@pytest.fixture
def resumable(make_daemon):
    return make_daemon({"log": {"transfer_log": "transfers.log"}})


def transfers(daemon) -> str:
    return (daemon.workdir / "transfers.log").read_text()


def test_a_cut_upload_is_resumed_with_only_the_rest(resumable, tmp_path):
    data = payload()
    cut_upload(resumable, "big.bin", data, CUT)
    kept = hidden(resumable.root)
    assert len(kept) == 1 and (resumable.root / kept[0]).stat().st_size == CUT
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with resumable.client() as client:
        assert client.list() == []                 # nothing partial is visible
        assert client.put(str(source), resume=True) == (SIZE, hashlib.sha256(data).hexdigest())
        assert [e.name for e in client.list()] == ["big.bin"]
    assert (resumable.root / "big.bin").read_bytes() == data
    assert hidden(resumable.root) == []
    line = [ln for ln in transfers(resumable).splitlines() if "ok from" in ln][0]
    assert line.split()[3:6] == ["C", "big.bin", str(SIZE - CUT)]   # only the rest came


def test_a_wrong_rest_fails_the_whole_digest_and_stores_nothing(resumable):
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    cut_upload(resumable, "big.bin", data, CUT)
    sock = resumable.greeted()
    sock.sendall(f"C big.bin {SIZE} {digest}\n".encode())
    assert read_reply(sock) == f"OK {CUT}\n".encode()
    sock.sendall(payload(seed=2)[CUT:])          # the rest of another file
    assert read_reply(sock).startswith(b"ERR 422 ")
    sock.sendall(b"L\n")
    assert read_reply(sock) == b"OK 0\n"         # the session goes on; nothing stored
    sock.close()
    assert not (resumable.root / "big.bin").exists()
    assert hidden(resumable.root) == []          # a failed whole is not kept


def test_another_digest_or_size_does_not_continue_the_partial(resumable):
    data = payload()
    cut_upload(resumable, "big.bin", data, CUT)
    sock = resumable.greeted()
    for request in (f"C big.bin {SIZE} {'ab' * 32}\n", f"C big.bin {SIZE + 1} "
                    f"{hashlib.sha256(data).hexdigest()}\n"):
        sock.sendall(request.encode())
        assert read_reply(sock) == b"OK 0\n"
        sock.close()
        sock = resumable.greeted()
    sock.close()


def test_a_partial_can_be_neither_named_nor_listed(resumable):
    (resumable.root / "sub").mkdir()
    cut_upload(resumable, "sub/big.bin", payload(), CUT)
    name = hidden(resumable.root / "sub")[0]
    sock = resumable.greeted()
    for verb in ("G", "H", "D", "L"):
        sock.sendall(f"{verb} sub/{name}\n".encode())
        assert read_reply(sock) == b"ERR 400 invalid name\n"
    sock.sendall(b"L sub\n")
    assert read_reply(sock) == b"OK 0\n"
    sock.close()


def test_c_needs_an_announced_digest(resumable):
    sock = resumable.greeted()
    sock.sendall(b"C a.bin 3 -\n")
    assert read_reply(sock) == b"ERR 400 C needs the sha256 announced\n"
    sock.sendall(b"C a.bin 3\n")
    assert read_reply(sock) == b"ERR 400 wrong number of fields\n"
    sock.close()


def test_one_partial_is_continued_by_one_session_at_a_time(resumable):
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    first = resumable.greeted()
    first.sendall(f"C big.bin {SIZE} {digest}\n".encode())
    assert read_reply(first) == b"OK 0\n"
    second = resumable.greeted()
    second.sendall(f"C big.bin {SIZE} {digest}\n".encode())
    assert read_reply(second).startswith(b"ERR 409 ")
    first.sendall(data)
    assert read_reply(first) == f"OK {SIZE} {digest}\n".encode()
    first.close()
    second.close()


def test_expired_partials_are_removed(make_daemon):
    daemon = make_daemon({"files": {"partial_upload_ttl": "1"}})
    data = payload()
    cut_upload(daemon, "one.bin", data, CUT)
    cut_upload(daemon, "two.bin", data, CUT)
    assert len(hidden(daemon.root)) == 2
    time.sleep(1.2)
    sock = daemon.greeted()              # a C in that directory sweeps it
    sock.sendall(f"C one.bin {SIZE} {hashlib.sha256(data).hexdigest()}\n".encode())
    assert read_reply(sock) == b"OK 0\n"        # expired: started again from byte 0
    sock.close()
    wait_until(lambda: "kept 0 bytes" in daemon.log(), what="the second cut")
    assert len(hidden(daemon.root)) == 1        # two.bin's is gone, one.bin's restarted
    old = time.time() - 10
    for name in hidden(daemon.root):
        os.utime(daemon.root / name, (old, old))
    daemon.stop()
    daemon.start()                        # the start-up sweep
    assert hidden(daemon.root) == []


def test_the_python_client_resumes_after_a_cut_of_its_own(resumable, tmp_path):
    data = payload(seed=3)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    cut_upload(resumable, "up.bin", data, SIZE - 1)
    with resumable.client() as client:
        assert client.put(str(source), resume=True)[0] == SIZE
        with pytest.raises(ServerError) as raised:
            client.get("nothing-here", str(tmp_path / "x"))
        assert raised.value.code == 404
    assert (resumable.root / "up.bin").read_bytes() == data


# -- ftpc put --continue and --retries ---------------------------------------------------

def rest_sent(daemon, name: str) -> List[int]:
    """Bytes each finished C of `name` received, from the transfer log."""
    return [int(ln.split()[5]) for ln in transfers(daemon).splitlines()
            if ln.split()[3:5] == ["C", name] and "ok from" in ln]


def test_ftpc_put_continue_sends_only_the_rest(resumable, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = payload(seed=4)
    (home / "big.bin").write_bytes(data)
    cut_upload(resumable, "big.bin", data, CUT)
    result = run_ftpc(resumable.addresses[0], "put", "--continue", "big.bin", home=home)
    assert result.returncode == 0, result.stderr
    assert (resumable.root / "big.bin").read_bytes() == data
    assert rest_sent(resumable, "big.bin") == [SIZE - CUT]


def test_ftpc_retries_resume_a_cut_upload(resumable, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = payload(seed=5)
    (home / "big.bin").write_bytes(data)
    relay = Relay(resumable.port, limit=400_000, mode="cut", upload=True)
    try:
        result = run_ftpc("--retries", "2", relay.address, "put", "big.bin", home=home)
    finally:
        relay.close()
    assert result.returncode == 0, result.stderr
    assert b"retrying" in result.stderr
    assert (resumable.root / "big.bin").read_bytes() == data
    [rest] = rest_sent(resumable, "big.bin")
    assert 0 < rest < SIZE               # the retry sent only what the cut left out
    assert hidden(resumable.root) == []


def test_the_shell_s_put_continue_sends_only_the_rest(resumable, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = payload(seed=6)
    (home / "big.bin").write_bytes(data)
    cut_upload(resumable, "big.bin", data, CUT)
    (home / "commands").write_text("put --continue big.bin\n")
    result = run_ftpc("-b", str(home / "commands"), resumable.addresses[0], home=home,
                      cwd=home)
    assert result.returncode == 0, result.stderr
    assert (resumable.root / "big.bin").read_bytes() == data
    assert rest_sent(resumable, "big.bin") == [SIZE - CUT]
