"""The digest kept with a file (user.ftpd.sha256): used while fresh, never when stale."""

import errno
import hashlib
import os

import pytest

from ftpd.server import digests
from ftpd.server.library import Library
from tests.harness import PROJECT

OLD_NS = 1_600_000_000 * 1_000_000_000      # a settled mtime: long before any test runs


def _xattrs_here(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return digests.supported(fd)
    finally:
        os.close(fd)


@pytest.fixture
def lib(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    if not _xattrs_here(root):
        pytest.skip(f"{root}'s file system has no user extended attributes "
                    "(tmpfs before Linux 6.6)")
    library = Library(str(root), node_pid=4242)
    assert library.digest_cache
    yield library
    library.close()


def put(lib, name, data, mtime=None):
    upload = lib.begin_upload(name, mtime=mtime)
    try:
        upload.write(memoryview(data))
        return upload.commit(hashlib.sha256(data).hexdigest())
    finally:
        upload.abort()


def attribute(lib, name):
    return os.getxattr(os.path.join(lib.root, name), digests.ATTRIBUTE).decode()


def plant(lib, name, digest):
    """A record that is fresh (size and mtime match) but names another digest."""
    info = os.stat(os.path.join(lib.root, name))
    value = f"{info.st_size} {info.st_mtime_ns} {digest}"
    os.setxattr(os.path.join(lib.root, name), digests.ATTRIBUTE, value.encode())


def test_an_upload_records_its_digest_against_the_final_size_and_mtime(lib):
    data = b"x" * 5000
    digest = put(lib, "a.bin", data, mtime=1_700_000_000)
    info = os.stat(os.path.join(lib.root, "a.bin"))
    assert info.st_mtime_ns == 1_700_000_000 * 1_000_000_000
    assert attribute(lib, "a.bin") == f"5000 {info.st_mtime_ns} {digest}"


def test_a_fresh_record_is_what_hash_answers(lib):
    put(lib, "a.bin", b"real content")
    planted = "ab" * 32            # not the content's digest: only the record can say it
    plant(lib, "a.bin", planted)
    assert lib.hash("a.bin") == (12, planted)


def test_a_file_changed_in_place_is_hashed_again(lib):
    put(lib, "a.bin", b"0123456789", mtime=1_700_000_000)
    path = os.path.join(lib.root, "a.bin")
    with open(path, "r+b") as handle:        # same size, new bytes, behind the server's back
        handle.write(b"ABCDEFGHIJ")
    assert lib.hash("a.bin") == (10, hashlib.sha256(b"ABCDEFGHIJ").hexdigest())


def test_a_record_for_another_size_or_mtime_is_refused(lib):
    put(lib, "a.bin", b"abc")
    path = os.path.join(lib.root, "a.bin")
    info = os.stat(path)
    truth = hashlib.sha256(b"abc").hexdigest()
    for stale in (f"4 {info.st_mtime_ns} {'cd' * 32}", f"3 {info.st_mtime_ns + 1} {'cd' * 32}",
                  "garbage", f"3 {info.st_mtime_ns} not-a-digest"):
        os.setxattr(path, digests.ATTRIBUTE, stale.encode())
        assert lib.hash("a.bin") == (3, truth)


def test_mtime_set_back_over_new_content_is_trusted_as_rsync_would(lib):
    """The documented limit (see ftpd/server/digests.py): same size, mtime
    restored with utime -> the record still matches, as rsync's quick check."""
    put(lib, "a.bin", b"first", mtime=1_700_000_000)
    path = os.path.join(lib.root, "a.bin")
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"other")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert lib.hash("a.bin")[1] == hashlib.sha256(b"first").hexdigest()


def test_first_hash_of_a_copied_in_file_records_it(lib):
    path = os.path.join(lib.root, "copied.bin")
    with open(path, "wb") as handle:
        handle.write(b"from the admin")
    os.utime(path, ns=(OLD_NS, OLD_NS))
    truth = hashlib.sha256(b"from the admin").hexdigest()
    assert lib.hash("copied.bin") == (14, truth)
    assert attribute(lib, "copied.bin") == f"14 {OLD_NS} {truth}"
    plant(lib, "copied.bin", "ef" * 32)
    assert lib.hash("copied.bin")[1] == "ef" * 32      # the next H uses the record


def test_a_just_modified_file_is_hashed_but_not_recorded(lib):
    path = os.path.join(lib.root, "hot.bin")
    with open(path, "wb") as handle:
        handle.write(b"still being written?")
    assert lib.hash("hot.bin")[1] == hashlib.sha256(b"still being written?").hexdigest()
    with pytest.raises(OSError) as raised:
        attribute(lib, "hot.bin")
    assert raised.value.errno == errno.ENODATA


def test_without_user_xattrs_the_library_hashes_every_time(tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "getxattr", unsupported)
    monkeypatch.setattr(os, "setxattr", unsupported)
    root = tmp_path / "lib"
    root.mkdir()
    library = Library(str(root))
    try:
        assert not library.digest_cache
        put(library, "a.bin", b"abc")
        assert library.hash("a.bin") == (3, hashlib.sha256(b"abc").hexdigest())
    finally:
        library.close()


def test_the_daemon_says_once_at_start_when_it_cannot_keep_digests(make_daemon):
    """The fallback as the admin sees it: a library on a file system without
    user xattrs (simulated by an unsupported-raising os.getxattr/setxattr via
    sitecustomize) logs one warning, and H still answers the right digest."""
    daemon = make_daemon(start=False)
    shim = daemon.workdir / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import errno, os\n"
        "def _no(*a, **k):\n"
        "    raise OSError(errno.EOPNOTSUPP, 'Operation not supported')\n"
        "os.getxattr = os.setxattr = _no\n")
    daemon.env = {"PYTHONPATH": os.pathsep.join([str(shim), str(PROJECT)])}
    daemon.root.mkdir(parents=True, exist_ok=True)
    daemon.start()
    try:
        (daemon.root / "b.bin").write_bytes(b"xyz")
        with daemon.client() as client:
            assert client.hash("b.bin") == (3, hashlib.sha256(b"xyz").hexdigest())
    finally:
        daemon.stop()
    assert daemon.log().count("no user extended attributes") == 1


def test_over_the_wire_h_never_answers_a_stale_digest(make_daemon, tmp_path):
    daemon = make_daemon()
    if not _xattrs_here(daemon.root):
        pytest.skip("the library's file system has no user extended attributes")
    source = tmp_path / "up.bin"
    source.write_bytes(b"q" * 70000)
    with daemon.client() as client:
        client.put(str(source), "up.bin")
        stored = daemon.root / "up.bin"
        assert os.getxattr(stored, digests.ATTRIBUTE).decode().endswith(
            hashlib.sha256(b"q" * 70000).hexdigest())
        with open(stored, "r+b") as handle:
            handle.seek(123)
            handle.write(b"Z")
        changed = stored.read_bytes()
        assert client.hash("up.bin") == (70000, hashlib.sha256(changed).hexdigest())
