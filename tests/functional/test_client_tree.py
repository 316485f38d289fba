"""ftpd.client's tree API (mkdir, delete, rename, list, walk, put with a
streamed digest and an mtime) against the real daemon, in both models."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import List

import pytest

from ftpd.client import tree as client_tree
from ftpd.client import readahead as filehash
from ftpd.client import transfers as client_transfers
from ftpd.client import Client, ConnectionLost, Entry, ServerError
from tests.certs import make_pki
from tests.harness import Daemon, fork_only, wait_until
from tests.ftpc_util import run_ftpc
from tests.functional.test_auth import make_users


def code_of(call, *args, **kwargs) -> int:
    with pytest.raises(ServerError) as info:
        call(*args, **kwargs)
    return info.value.code


def stray_files(root: Path) -> List[str]:
    """Everything under root, hidden names included (temporaries would be)."""
    return sorted(str(Path(d, n).relative_to(root)) for d, _, names in os.walk(root)
                  for n in names)


def local_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def policy_daemon(make_daemon, tmp_path):
    """A daemon with a writer and a reader account and the given [files] overwrite."""
    def start(overwrite: str = "yes") -> Daemon:
        users = make_users(tmp_path / "users", writer="write:pw-w", reader="read:pw-r")
        return make_daemon({"access": {"anonymous": "read", "users_file": users},
                            "files": {"overwrite": overwrite}})
    return start


# -- mkdir and list ----------------------------------------------------------------------

def test_mkdir_makes_directory_rows_and_list_reads_a_path(daemon, tmp_path):
    with daemon.client() as c:
        c.mkdir("photos")
        c.mkdir("photos/2026")
        c.put(local_file(tmp_path, "a", b"12345"), "photos/beach.jpg")
        [row] = c.list()
        assert (row.name, row.size, row.is_dir) == ("photos", None, True)
        assert row.mtime == int(os.stat(daemon.root / "photos").st_mtime)
        assert [(e.name, e.size, e.is_dir) for e in c.list("photos")] == \
            [("2026", None, True), ("beach.jpg", 5, False)]
        assert c.list("photos/2026") == []
        [alone] = c.list("photos/beach.jpg")          # a file's path: its own row
        assert (alone.name, alone.size, alone.is_dir) == ("beach.jpg", 5, False)
    assert (daemon.root / "photos" / "2026").is_dir()


def test_mkdir_and_list_error_codes(daemon):
    (daemon.root / "f").write_bytes(b"x")
    with daemon.client() as c:
        c.mkdir("d")
        assert code_of(c.mkdir, "d") == 409                  # exists
        assert code_of(c.mkdir, "f") == 409                  # a file is there
        assert code_of(c.mkdir, "missing/d") == 404          # parent missing
        for bad in ("a//b", "../x", "/abs", "d/.hidden", "d/"):
            assert code_of(c.mkdir, bad) == 400, bad
        assert code_of(c.list, "missing") == 404
        assert code_of(c.list, "d/../f") == 400
        assert [e.name for e in c.list()] == ["d", "f"]      # the session went on


# -- delete ------------------------------------------------------------------------------

def test_delete_files_and_empty_directories(daemon):
    (daemon.root / "d" / "e").mkdir(parents=True)
    (daemon.root / "d" / "f").write_bytes(b"x")
    with daemon.client() as c:
        assert code_of(c.delete, "d") == 409                 # not empty
        assert code_of(c.delete, "nope") == 404
        assert code_of(c.delete, "d/nope/x") == 404
        assert code_of(c.delete, "d/.x") == 400
        c.delete("d/f")
        c.delete("d/e")
        c.delete("d")
        assert c.list() == []
    assert os.listdir(daemon.root) == []


# -- rename ------------------------------------------------------------------------------

def test_rename_moves_files_and_directories(daemon):
    (daemon.root / "a.txt").write_bytes(b"aaa")
    (daemon.root / "old" / "inner").mkdir(parents=True)
    (daemon.root / "old" / "inner" / "deep.txt").write_bytes(b"deep")
    with daemon.client() as c:
        c.mkdir("docs")
        c.rename("a.txt", "docs/b.txt")
        c.rename("old", "docs/new")                            # a whole sub-tree
        assert [e.name for e in c.list()] == ["docs"]
        assert [e.name for e in c.list("docs")] == ["b.txt", "new"]
    assert (daemon.root / "docs" / "b.txt").read_bytes() == b"aaa"
    assert (daemon.root / "docs" / "new" / "inner" / "deep.txt").read_bytes() == b"deep"


def test_rename_error_codes(daemon):
    for path in ("dir/sub", "other"):
        (daemon.root / path).mkdir(parents=True)
    (daemon.root / "f").write_bytes(b"f")
    (daemon.root / "g").write_bytes(b"g")
    with daemon.client() as c:
        assert code_of(c.rename, "nope", "x") == 404           # no source
        assert code_of(c.rename, "f", "missing/f") == 404      # no target parent
        assert code_of(c.rename, "f", "other") == 409          # onto a directory
        assert code_of(c.rename, "dir", "dir/sub/x") == 409    # into itself
        assert code_of(c.rename, "f", "../f") == 400
        c.rename("f", "g")                                     # replaces a file
        assert [e.name for e in c.list()] == ["dir", "g", "other"]
    assert (daemon.root / "g").read_bytes() == b"f"


# -- permissions -------------------------------------------------------------------------

def test_read_access_refuses_every_change(policy_daemon, tmp_path):
    daemon = policy_daemon()
    (daemon.root / "d").mkdir()
    (daemon.root / "f").write_bytes(b"f")
    upload = local_file(tmp_path, "up", b"up")
    with daemon.client() as c:
        assert code_of(c.mkdir, "n") == 401                    # anonymous: log in
        c.login("reader", "pw-r")
        assert code_of(c.mkdir, "n") == 403
        assert code_of(c.delete, "f") == 403
        assert code_of(c.rename, "f", "d/f") == 403
        assert code_of(c.put, upload, "d/up", digest="stream") == 403
        assert [e.name for e in c.list()] == ["d", "f"]
    assert stray_files(daemon.root) == ["f"]


def test_overwrite_no_keeps_what_is_stored_but_adds(policy_daemon, tmp_path):
    daemon = policy_daemon(overwrite="no")
    (daemon.root / "f").write_bytes(b"kept")
    (daemon.root / "empty").mkdir()
    with daemon.client() as c:
        c.login("writer", "pw-w")
        assert code_of(c.delete, "f") == 403
        assert code_of(c.rename, "f", "g") == 403
        assert code_of(c.put, local_file(tmp_path, "f", b"new"), "f", digest="stream") == 403
        c.mkdir("box")                                         # a drop box still takes
        c.put(local_file(tmp_path, "n", b"new"), "box/n", digest="stream")
    assert (daemon.root / "f").read_bytes() == b"kept"
    assert (daemon.root / "box" / "n").read_bytes() == b"new"


# -- walk --------------------------------------------------------------------------------

def build_tree(root: Path) -> None:
    """Three levels: root, a/ and b/, a/x/ and a/y/, with files at each."""
    files = {"top.txt": 1, "a/a1": 2, "a/a2": 3, "b/b1": 4,
             "a/x/deep1": 5, "a/x/deep two": 6, "a/y/deep3": 7}
    for path, size in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"z" * size)
    (root / "b" / "empty").mkdir()


def local_walk(root: Path, top: str = ""):
    """What walk() must report, from the library on disk."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root / top):
        rel = os.path.relpath(dirpath, root)
        found["" if rel == "." else rel] = (
            sorted(dirnames),
            sorted((n, os.stat(os.path.join(dirpath, n)).st_size) for n in filenames))
    return found


def as_map(steps):
    return {dirpath: (sorted(dirnames), sorted((e.name, e.size) for e in files))
            for dirpath, dirnames, files in steps}


def test_walk_covers_a_three_level_tree_parents_first(daemon):
    build_tree(daemon.root)
    with daemon.client() as c:
        steps = list(c.walk())
        assert as_map(steps) == local_walk(daemon.root)
        order = [dirpath for dirpath, _, _ in steps]
        assert len(order) == len(set(order)) == 6
        for dirpath in order[1:]:        # every directory after its parent
            parent = dirpath.rpartition("/")[0]
            assert order.index(parent) < order.index(dirpath)
        assert all(isinstance(e, Entry) and not e.is_dir for _, _, fs in steps for e in fs)
        assert as_map(c.walk("a")) == local_walk(daemon.root, "a")
        assert c.list("a/x/deep two")[0].size == 6           # still in step afterwards


def test_walk_prunes_like_os_walk_and_refuses_files_and_missing(daemon):
    build_tree(daemon.root)
    with daemon.client() as c:
        seen = []
        for dirpath, dirnames, _ in c.walk():
            seen.append(dirpath)
            if "a" in dirnames:
                dirnames.remove("a")
        assert sorted(seen) == ["", "b", "b/empty"]
        assert code_of(lambda: list(c.walk("top.txt"))) == 409
        assert code_of(lambda: list(c.walk("nope"))) == 404
    (daemon.root / "c").mkdir()
    (daemon.root / "c" / "c").write_bytes(b"c")            # looks like L of a file
    with daemon.client() as c:
        assert as_map(c.walk("c")) == {"c": ([], [("c", 1)])}


def test_walk_reports_a_directory_removed_meanwhile(daemon):
    build_tree(daemon.root)
    with daemon.client() as c:
        errors: List[ServerError] = []
        seen = []
        for dirpath, _, _ in c.walk(onerror=errors.append):
            seen.append(dirpath)
            if dirpath == "":                                   # before level two is asked
                (daemon.root / "b" / "b1").unlink()
                (daemon.root / "b" / "empty").rmdir()
                (daemon.root / "b").rmdir()
        assert [e.code for e in errors] == [404]
        assert sorted(seen) == ["", "a", "a/x", "a/y"]
        # without onerror the failure ends the walk, and the session is still in step
        with pytest.raises(ServerError) as info:
            for dirpath, _, _ in c.walk():
                if dirpath == "a":                              # listed, its children not yet
                    (daemon.root / "a" / "y" / "deep3").unlink()
                    (daemon.root / "a" / "y").rmdir()
        assert info.value.code == 404
        assert [e.name for e in c.list("a")] == ["a1", "a2", "x"]


def test_list_and_walk_over_the_listing_limit_get_413(make_daemon):
    daemon = make_daemon({"files": {"max_entries_per_listing": 3}})
    for path in ("a/1", "a/2", "b/1", "b/2", "b/3", "b/4", "c/1"):
        (daemon.root / path).parent.mkdir(exist_ok=True)
        (daemon.root / path).write_bytes(b"")
    with daemon.client() as c:
        assert code_of(c.list, "b") == 413
        errors: List[ServerError] = []
        seen = {d: [e.name for e in fs] for d, _, fs in c.walk(onerror=errors.append)}
        assert seen == {"": [], "a": ["1", "2"], "c": ["1"]}      # b skipped, c still read
        assert [e.code for e in errors] == [413]
        assert code_of(lambda: list(c.walk())) == 413
        assert [e.name for e in c.list()] == ["a", "b", "c"]


def test_walk_pipelines_a_wide_level_in_windows(daemon, monkeypatch):
    names = [f"{index:03d}" + "w" * 200 for index in range(120)]   # ~25 KiB of L requests
    for name in names:
        (daemon.root / name).mkdir()
        (daemon.root / name / "f").write_bytes(name[:3].encode())
    with daemon.client() as c:
        sends = []
        real_send = c._send
        monkeypatch.setattr(c, "_send", lambda data: (sends.append(len(data)), real_send(data)))
        steps = list(c.walk())
        assert len(steps) == 121
        assert {d: [(e.name, e.size) for e in fs] for d, _, fs in steps[1:]} == \
            {name: [("f", 3)] for name in names}
        # one L for the root, then the 120 directories in two windows, not 120 sends
        assert len(sends) == 3 and max(sends) <= client_tree.WALK_WINDOW_BYTES
        assert sum(sends[1:]) == sum(len(f"L {name}\n") for name in names)
        for count, _ in enumerate(c.walk(), 1):
            if count == 5:
                break                       # mid-window: no reply is left unread
        assert len(c.list()) == 120


# -- put: streamed digest, mtime -------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 3 << 20])
def test_put_stream_hashes_while_sending(daemon, tmp_path, size):
    data = os.urandom(size)
    source = local_file(tmp_path, "src", data)
    with daemon.client() as c:
        c.mkdir("in")
        progress: List[int] = []
        result = c.put(source, "in/my file", progress=progress.append, digest="stream")
        assert result == (size, hashlib.sha256(data).hexdigest())
        assert sum(progress) == size
        assert c.hash("in/my file") == result
    assert (daemon.root / "in" / "my file").read_bytes() == data


# Both ways a streamed digest is made: a small file hashed at once, a large
# one by the read-ahead thread.
@pytest.mark.parametrize("size", [100_000, filehash.CHUNK + 100_000])
def test_put_stream_with_a_wrong_digest_stores_nothing(daemon, tmp_path, monkeypatch, size):
    class WrongSha256:
        """sha256 whose digest also covers one byte that was never sent."""
        def __init__(self, data=b""):
            self.real = hashlib.sha256(data)

        def update(self, data):
            self.real.update(data)

        def hexdigest(self):
            self.real.update(b"!")
            return self.real.hexdigest()

    fake = type("fake", (), {"sha256": WrongSha256})
    monkeypatch.setattr(filehash, "hashlib", fake)
    monkeypatch.setattr(client_transfers, "hashlib", fake)
    (daemon.root / "d").mkdir()
    (daemon.root / "d" / "old").write_bytes(b"old")
    source = local_file(tmp_path, "src", os.urandom(size))
    with daemon.client() as c:
        assert code_of(c.put, source, "d/new", digest="stream") == 422
        assert code_of(c.put, source, "d/old", digest="stream") == 422
        assert [(e.name, e.size) for e in c.list("d")] == [("old", 3)]   # session goes on
    assert stray_files(daemon.root) == ["d/old"]
    assert (daemon.root / "d" / "old").read_bytes() == b"old"


def test_read_ahead_hasher_hashes_in_order_and_sees_a_short_file(tmp_path):
    data = os.urandom(3 * filehash.CHUNK + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        hasher = filehash.ReadAheadHasher(handle.fileno(), 0, len(data))
        counts = [hasher.next_chunk() for _ in range(4)]
        assert counts == [filehash.CHUNK] * 3 + [5]
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        hasher.stop()
        short = filehash.ReadAheadHasher(handle.fileno(), 0, len(data) + 10)   # file "shrank"
        assert [short.next_chunk() for _ in range(5)][-1] == 0
        short.stop()
        early = filehash.ReadAheadHasher(handle.fileno(), 0, len(data))
        early.next_chunk()
        early.stop()                      # a failed upload ends the thread at once
        assert not early.thread.is_alive()


@fork_only
def test_put_stream_cut_by_the_server_leaves_no_thread_and_no_file(daemon, tmp_path):
    source = local_file(tmp_path, "big", os.urandom(64 << 20))   # beyond any socket buffer
    with daemon.client() as c:
        [session] = wait_until(daemon.live_children, what="session")
        with pytest.raises(ConnectionLost):
            c.put(source, "big", progress=lambda _: session.kill(), digest="stream")
    assert not [t for t in threading.enumerate() if t.name == "ftpd-upload-hash"]
    wait_until(lambda: not daemon.live_children(), what="session gone")
    assert [n for n in os.listdir(daemon.root) if not n.startswith(".")] == []


def test_put_refuses_missing_parent_and_directory_before_sending(daemon, tmp_path):
    source = local_file(tmp_path, "src", b"data")
    (daemon.root / "d").mkdir()
    with daemon.client() as c:
        for mode in ("announce", "stream", "none"):
            assert code_of(c.put, source, "missing/f", digest=mode) == 404
            assert code_of(c.put, source, "d", digest=mode) == 409
            assert code_of(c.put, source, "d/../f", digest=mode) == 400
        assert c.put(source, "d/f", digest="none") == (4, hashlib.sha256(b"data").hexdigest())
    assert stray_files(daemon.root) == ["d/f"]


@pytest.mark.parametrize("mode", ["announce", "stream"])
def test_put_keeps_the_given_mtime(daemon, tmp_path, mode):
    source = local_file(tmp_path, "src", b"old times")
    stamp = 1_000_000_000
    with daemon.client() as c:
        c.put(source, "dated", digest=mode, mtime=stamp)
        [row] = c.list("dated")
        assert row.mtime == stamp
    assert os.stat(daemon.root / "dated").st_mtime == stamp


def test_put_rejects_bad_options_locally(daemon, tmp_path):
    source = local_file(tmp_path, "src", b"x")
    with daemon.client() as c:
        with pytest.raises(ValueError):
            c.put(source, "f", digest="none", mtime=1)          # mtime needs a digest field
        with pytest.raises(ValueError):
            c.put(source, "f", digest="sha1")                     # type: ignore[arg-type]
        assert c.list() == []


def test_tree_verbs_and_stream_put_over_tls(make_daemon, tmp_path_factory, tmp_path):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    daemon = make_daemon({"tls": {"certificate": pki.cert, "private_key": pki.key}})
    data = os.urandom(5 << 20)        # several chunks through the TLS layer
    source = local_file(tmp_path, "src", data)
    with Client(daemon.host, daemon.port, timeout=10, ssl_context=pki.client_context()) as c:
        c.mkdir("d")
        assert c.put(source, "d/f", digest="stream", mtime=1_500_000_000) == \
            (len(data), hashlib.sha256(data).hexdigest())
        c.rename("d/f", "d/g")
        assert as_map(c.walk()) == {"": (["d"], []), "d": ([], [("g", len(data))])}
        assert c.list("d/g")[0].mtime == 1_500_000_000
        c.delete("d/g")
        c.delete("d")
    assert os.listdir(daemon.root) == []


# -- ftpc with directory rows ------------------------------------------------------------

def test_ftpc_list_shows_directories(daemon, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (daemon.root / "photos").mkdir()
    (daemon.root / "f.bin").write_bytes(b"z" * 2048)
    table = run_ftpc(f"{daemon.host}:{daemon.port}", "list", home=home)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[1].split()[-1] == "f.bin"
    assert lines[2].split()[0] == "-" and lines[2].split()[-1] == "photos/"
    assert lines[-1] == "1 file, 1 directory, 2.0 KiB total"
    fetched = run_ftpc(f"{daemon.host}:{daemon.port}", "get", "photos", home=home)
    assert fetched.returncode != 0 and b"Traceback" not in fetched.stderr
    assert not (home / "photos").exists()
    listed = run_ftpc(f"{daemon.host}:{daemon.port}", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"name": "f.bin", "size": 2048, "mtime": int(os.stat(daemon.root / "f.bin").st_mtime),
         "type": "file"},
        {"name": "photos/", "size": None,
         "mtime": int(os.stat(daemon.root / "photos").st_mtime), "type": "dir"}]
