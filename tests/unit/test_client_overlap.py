"""The client's overlapped download digest: the SHA-256 of every byte in
order, whatever mix of small (hashed at once) and large (hashed by the
helper thread) chunks arrives, with buffers reused as Stream.iter_exact
reuses them (a chunk may change once the next-but-one update is made)."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ftpd.client.overlap import BACKGROUND_MIN, OverlappedDigest

SIZES = st.lists(st.sampled_from([1, 4096, BACKGROUND_MIN - 1, BACKGROUND_MIN,
                                  3 * BACKGROUND_MIN + 7]), max_size=10)


def stream_digests(sizes, prefix=b""):
    """(overlapped, plain) hex digests of chunks received into two
    alternating buffers: writing chunk k overwrites chunk k-2, so a hash
    that lagged behind the contract would see the new bytes."""
    buffers = [bytearray(3 * BACKGROUND_MIN + 7) for _ in range(2)]
    plain = hashlib.sha256(prefix)
    overlapped = OverlappedDigest(hashlib.sha256(prefix))
    for turn, size in enumerate(sizes):
        view = memoryview(buffers[turn % 2])[:size]
        view[:] = os.urandom(size)
        plain.update(view)
        overlapped.update(view)
    return overlapped.hexdigest(), plain.hexdigest()


@settings(max_examples=40, deadline=None)
@given(SIZES, st.binary(max_size=100))
def test_the_digest_covers_every_chunk_in_order(sizes, prefix):
    got, expected = stream_digests(sizes, prefix)
    assert got == expected


def test_two_digests_in_turn_share_the_helper_without_mixing():
    first = OverlappedDigest(hashlib.sha256())
    second = OverlappedDigest(hashlib.sha256())
    one, two = os.urandom(BACKGROUND_MIN * 2), os.urandom(BACKGROUND_MIN * 2)
    first.update(memoryview(one))
    second.update(memoryview(two))
    first.update(memoryview(two))
    assert first.hexdigest() == hashlib.sha256(one + two).hexdigest()
    assert second.hexdigest() == hashlib.sha256(two).hexdigest()
