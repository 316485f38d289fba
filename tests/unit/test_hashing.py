"""The overlapped SHA-256 of uploads: same digest as hashlib, whatever the
chunking, while the caller reuses its two buffers as Stream.iter_exact does."""

import hashlib
import os
import signal
import time

from hypothesis import given, settings, strategies as st

from ftpd.server.hashing import BACKGROUND_MIN, OverlappedSha256


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([1, 100, BACKGROUND_MIN - 1, BACKGROUND_MIN, 1 << 20]),
                max_size=8), st.binary(min_size=1, max_size=64))
def test_digest_matches_hashlib_with_two_reused_buffers(sizes, seed):
    buffers = [bytearray(1 << 20), bytearray(1 << 20)]
    reference = hashlib.sha256()
    overlapped = OverlappedSha256()
    for turn, size in enumerate(sizes):
        buf = buffers[turn % 2]
        buf[:size] = (seed * (size // len(seed) + 1))[:size]
        seed = hashlib.sha256(seed).digest()
        reference.update(buf[:size])
        overlapped.update(memoryview(buf)[:size])
    assert overlapped.hexdigest() == reference.hexdigest()
    overlapped.close()
    overlapped.close()


def _tasks() -> set:
    """This process's thread ids. The set, not the count: threads left by
    earlier tests in the same (xdist worker) process may end meanwhile."""
    return set(os.listdir("/proc/self/task"))


def test_close_mid_upload_stops_its_own_helper_thread():
    before = _tasks()
    overlapped = OverlappedSha256()
    overlapped.update(memoryview(os.urandom(BACKGROUND_MIN * 2)))
    helper = _tasks() - before
    assert overlapped._own is not None and len(helper) == 1
    overlapped.close()
    deadline = time.monotonic() + 5     # the thread is gone just after it says so
    while helper & _tasks() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not helper & _tasks()


def test_without_any_thread_allowed_chunks_are_hashed_inline(monkeypatch):
    from ftpd.server import hashing

    def refuse(function, args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(hashing._thread, "start_new_thread", refuse)
    monkeypatch.setattr(hashing, "_process_helper", None)
    hashing.prestart()
    assert hashing._process_helper is None
    data = os.urandom(BACKGROUND_MIN * 3)
    overlapped = OverlappedSha256()
    overlapped.update(memoryview(data))
    assert overlapped.hexdigest() == hashlib.sha256(data).hexdigest()
    overlapped.close()


def test_a_prestarted_helper_serves_every_upload_of_the_process(monkeypatch):
    from ftpd.server import hashing

    monkeypatch.setattr(hashing, "_process_helper", None)
    before = _tasks()
    hashing.prestart()
    helper = hashing._process_helper
    try:
        for _ in range(3):
            data = os.urandom(BACKGROUND_MIN * 2)
            overlapped = OverlappedSha256()
            overlapped.update(memoryview(data))
            assert overlapped._helper is helper and overlapped._own is None
            assert overlapped.hexdigest() == hashlib.sha256(data).hexdigest()
            overlapped.close()
        assert len(_tasks() - before) == 1      # one helper for all three uploads
    finally:
        helper.stop()


def test_large_upload_is_stored_with_the_right_digest(daemon, tmp_path):
    data = os.urandom(9 << 20)        # several 1 MiB chunks: the background path
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with daemon.client() as client:
        assert client.put(str(source), "big.bin") == (len(data), hashlib.sha256(data).hexdigest())
    assert (daemon.root / "big.bin").read_bytes() == data


def test_the_helper_thread_blocks_signals_so_they_reach_the_main_thread():
    from ftpd.server.hashing import HashThread

    before = set(os.listdir("/proc/self/task"))
    helper = HashThread()
    assert helper.start()
    try:
        [tid] = set(os.listdir("/proc/self/task")) - before
        status = dict(line.split(":\t", 1) for line in
                      open(f"/proc/self/task/{tid}/status").read().splitlines() if ":\t" in line)
        blocked = int(status["SigBlk"], 16)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            assert blocked & (1 << (sig - 1)), sig
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, [])   # ours is left as it was
    finally:
        helper.stop()
