"""The file library on its own: names, listing, temps, commit, cleanup."""

import hashlib
import os
import subprocess

import pytest

from ftpd.server.library import Library, LibraryError, node_host, temp_name
from tests.harness import read_reply


@pytest.fixture
def lib(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    library = Library(str(root), node_pid=4242)
    yield library
    library.close()


def write(lib, name, data, expected=None):
    upload = lib.begin_upload(name)
    try:
        upload.write(memoryview(data))
        return upload.commit(expected)
    finally:
        upload.abort()


def names(lib, path=None):
    count, rows = lib.list(path)
    found = [name + ("/" if size is None else "") for name, size, _ in rows]
    assert len(found) == count
    return found


def test_every_path_decision_refuses_invalid_paths(lib):
    for bad in ("../x", ".hidden", "a/../b", "/a", "a/", "a//b", "", "x\x00", "a/./b",
                ("a/b",), (), ("a", ".."), "x" * 256):
        with pytest.raises(LibraryError) as info:
            with lib.locate(bad):
                pass
        assert info.value.code == 400, bad
        for act in (lib.open_read, lib.begin_upload, lib.mkdir, lib.delete, lib.list):
            with pytest.raises(LibraryError):
                act(bad or "/")


def test_paths_deeper_than_max_depth_are_400(tmp_path):
    (tmp_path / "r").mkdir()
    lib = Library(str(tmp_path / "r"), max_depth=3)
    lib.mkdir("a")
    with pytest.raises(LibraryError) as info:
        lib.mkdir("a/b/c/d")
    assert info.value.code == 400
    with pytest.raises(LibraryError) as info:
        lib.mkdir("a/b/c")
    assert info.value.code == 404          # depth 3 is allowed; a/b is missing
    lib.close()


def test_upload_commit_and_hash(lib):
    digest = write(lib, "f", b"data")
    assert digest == hashlib.sha256(b"data").hexdigest()
    assert lib.hash("f") == (4, digest)
    assert names(lib) == ["f"]
    assert os.listdir(lib.root) == ["f"]


def test_digest_mismatch_leaves_nothing(lib):
    with pytest.raises(LibraryError) as info:
        write(lib, "f", b"data", expected="0" * 64)
    assert info.value.code == 422
    assert os.listdir(lib.root) == []


def test_temp_names_carry_host_and_pids(lib):
    upload = lib.begin_upload("f", session_pid=99)
    assert upload.temp.startswith(f".ftpd~{node_host()}~4242~99~")
    assert upload.temp.endswith(".part")
    upload.abort()
    assert os.listdir(lib.root) == []


def test_cleanup_removes_only_this_nodes_dead_temps(lib):
    root = lib.root
    mine_dead = temp_name(1111, 2)
    mine_alive = temp_name(2222, 3)
    own_pid_reused = temp_name(4242, 5)
    other_host = ".ftpd~elsewhere~1111~2~0123456789abcdef.part"
    for name in (mine_dead, mine_alive, own_pid_reused, other_host, ".admin", ".ftpd~junk"):
        open(os.path.join(root, name), "w").close()
    removed = lib.cleanup_temps(alive=lambda pid: pid == 2222)
    assert sorted(removed) == sorted([mine_dead, own_pid_reused])
    assert sorted(os.listdir(root)) == sorted([mine_alive, other_host, ".admin", ".ftpd~junk"])


def test_remove_session_temps_only_touches_that_session(lib):
    a, b = temp_name(4242, 10), temp_name(4242, 11)
    for name in (a, b):
        open(os.path.join(lib.root, name), "w").close()
    assert lib.remove_session_temps(10) == [a]
    assert os.listdir(lib.root) == [b]


def test_temps_are_swept_in_sub_directories_but_not_through_links_or_hidden_dirs(lib,
                                                                               tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = lib.root
    for directory in ("a/b/c", ".snapshot"):
        os.makedirs(os.path.join(root, directory))
    os.symlink(outside, os.path.join(root, "a", "link"))
    mine = [os.path.join("a", "b", "c", temp_name(4242, 10)), temp_name(4242, 10)]
    kept = [os.path.join(".snapshot", temp_name(4242, 10)), os.path.join("a", temp_name(4242, 11))]
    for name in mine + kept:
        open(os.path.join(root, name), "w").close()
    (outside / temp_name(4242, 10)).write_bytes(b"")
    assert sorted(lib.remove_session_temps(10)) == sorted(mine)
    assert all(os.path.exists(os.path.join(root, name)) for name in kept)
    assert len(os.listdir(outside)) == 1


def test_an_upload_lands_where_its_path_leads_at_commit(lib):
    lib.mkdir("d")
    upload = lib.begin_upload("d/f", mtime=1_000_000_000)
    try:
        upload.write(memoryview(b"data"))
        os.rename(os.path.join(lib.root, "d"), os.path.join(lib.root, "moved"))
        with pytest.raises(LibraryError) as info:
            upload.commit(None)
        assert info.value.code == 404
    finally:
        upload.abort()
    assert os.listdir(os.path.join(lib.root, "moved")) == []
    write(lib, "moved/f", b"data")
    assert names(lib, "moved") == ["f"]


def test_views_are_rooted_at_their_home_and_make_it(lib, tmp_path):
    home = lib.view("users/alice", create=True)
    try:
        write(home, "f", b"mine")
        assert home.shown(("f",)) == "users/alice/f"
        assert names(home) == ["f"] and names(lib) == ["users/"]
        with pytest.raises(LibraryError) as info:
            home.open_read("users/alice/f")
        assert info.value.code == 404
    finally:
        home.close()
    os.symlink(tmp_path, os.path.join(lib.root, "trap"))
    with pytest.raises(LibraryError) as info:
        lib.view("trap/bob", create=True)
    assert info.value.code == 404 and not (tmp_path / "bob").exists()


def test_check_upload_refusals(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "exists").write_bytes(b"x")
    lib = Library(str(root), overwrite=False, max_file_size=10, min_free_space=0)
    codes = {}
    for name, size in (("exists", 1), ("big", 11)):
        with pytest.raises(LibraryError) as info:
            lib.check_upload(name, size)
        codes[name] = info.value.code
    assert codes == {"exists": 403, "big": 413}
    lib.check_upload("new", 10)
    huge = Library(str(root), min_free_space=1 << 60)
    with pytest.raises(LibraryError) as info:
        huge.check_upload("new", 1)
    assert info.value.code == 507


def test_upload_onto_a_directory_is_409(lib):
    os.mkdir(os.path.join(lib.root, "adir"))
    with pytest.raises(LibraryError) as info:
        lib.check_upload("adir", 1)
    assert info.value.code == 409
    with pytest.raises(LibraryError) as info:       # made while the upload ran
        write(lib, "adir", b"x")
    assert info.value.code == 409
    assert os.listdir(lib.root) == ["adir"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_disk_full_mid_upload_gives_507_and_removes_the_temp(make_daemon, tmp_path):
    daemon = make_daemon(start=False)
    daemon.root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(daemon.root)]
                      ).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        daemon.settings["files"] = {"min_free_space": 0}
        daemon.start()
        (daemon.root / "keep").write_bytes(b"previous")
        socks = []
        for name in ("a", "keep"):
            sock = daemon.connect()
            read_reply(sock)
            sock.sendall(f"P {name} 1500000\n".encode())
            assert read_reply(sock) == b"OK ready\n"
            socks.append(sock)
        # Both passed the free-space check; the first fills 1.5 of 2 MiB,
        # so the second runs out of space in the middle of its write.
        socks[0].sendall(b"z" * 1_500_000)
        assert read_reply(socks[0], timeout=30).startswith(b"OK 1500000 ")
        socks[1].sendall(b"z" * 1_500_000)
        assert read_reply(socks[1], timeout=30).startswith(b"ERR 507 ")
        assert (daemon.root / "keep").read_bytes() == b"previous"
        assert (daemon.root / "a").stat().st_size == 1_500_000
        assert not [n for n in os.listdir(daemon.root) if n.startswith(".ftpd~")]
        for sock in socks:              # both sessions are still usable
            sock.sendall(b"L\n")
            assert read_reply(sock).startswith(b"OK ")
            sock.close()
    finally:
        daemon.kill_everything()
        subprocess.run(["umount", "-l", str(daemon.root)])
