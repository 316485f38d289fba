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


def test_every_path_decision_refuses_invalid_names(lib):
    for bad in ("../x", ".hidden", "a/b", "", "x\x00"):
        with pytest.raises(LibraryError) as info:
            lib.path_for(bad)
        assert info.value.code == 400
        with pytest.raises(LibraryError):
            lib.open_read(bad)
        with pytest.raises(LibraryError):
            lib.begin_upload(bad)


def test_upload_commit_and_hash(lib):
    digest = write(lib, "f", b"data")
    assert digest == hashlib.sha256(b"data").hexdigest()
    assert lib.hash("f") == (4, digest)
    assert [e.name for e in lib.list()] == ["f"]
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


def test_upload_onto_a_directory_is_403(lib):
    os.mkdir(os.path.join(lib.root, "adir"))
    with pytest.raises(LibraryError) as info:
        write(lib, "adir", b"x")
    assert info.value.code == 403
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
