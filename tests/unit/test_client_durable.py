"""make_durable, behind get -r's batched commits: one syncfs per file system
for a whole batch, an fsync of each file where there is no syncfs, and a
LocalError (nothing renamed by the caller) when the flush fails."""

from __future__ import annotations

import os

import pytest

from ftpd.client import LocalError
from ftpd.client import local


def files(tmp_path, count):
    paths = []
    for number in range(count):
        path = tmp_path / f".f{number}.ftpc-part"
        path.write_bytes(b"x" * number)
        paths.append(str(path))
    return paths


def test_one_syncfs_for_a_batch_on_one_file_system(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(local, "_syncfs", lambda: lambda fd: calls.append(os.fstat(fd)) or 0)
    local.make_durable(files(tmp_path, 5))
    assert len(calls) == 1 and calls[0].st_dev == os.stat(tmp_path).st_dev


def test_without_syncfs_each_file_is_fsynced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(local, "_syncfs", lambda: None)
    monkeypatch.setattr(local.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino))
    paths = files(tmp_path, 3)
    local.make_durable(paths)
    assert sorted(synced) == sorted(os.stat(p).st_ino for p in paths)


def test_a_failed_flush_is_a_local_error(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_syncfs", lambda: lambda fd: -1)
    monkeypatch.setattr(local, "_errno", lambda: 5)
    with pytest.raises(LocalError, match="cannot make the received files durable"):
        local.make_durable(files(tmp_path, 2))


def test_the_real_syncfs_is_found_and_works_here(tmp_path):
    assert local._syncfs() is not None          # Linux: the C library has it
    local.make_durable(files(tmp_path, 2))
