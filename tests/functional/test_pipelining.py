"""Tree transfers send their requests ahead (issues 13 and 14): put -r sends
the next P with the previous file's bytes, before that file's final reply;
get -r keeps H+G requests in flight ahead of the file it reads. Seen on the
wire through a recording relay, and inside the client by counting requests.
Also: put_many goes on past a refused file, an unreadable one and a digest
mismatch, and stores nothing it should not."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from ftpd.client import LocalError, ServerError, Upload
from ftpd.client import pipeline as client_pipeline
from ftpd.client import transfers as client_transfers
from ftpd.ftpc import tree_get
from ftpd.ftpc.transfer import no_bar
from ftpd.ftpc.tree import TreeOptions
from tests.ftpc_util import RecordingRelay, make_file, run_ftpc
from tests.harness import wait_until
from tests.functional.test_client_tree import stray_files

SIZE = 5000


@pytest.fixture
def relay(daemon):
    relay = RecordingRelay(daemon.port)
    yield relay
    relay.close()


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def test_put_r_sends_the_next_p_before_the_previous_files_final_reply(daemon, relay,
                                                                      tmp_path):
    names = ["a.bin", "b.bin", "c.bin"]
    (tmp_path / "src").mkdir()
    contents = {name: make_file(tmp_path / "src" / name, SIZE) for name in names}
    result = run_ftpc(relay.address, "put", "-r", "src", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for name, data in contents.items():
        assert (daemon.root / "src" / name).read_bytes() == data
    for earlier, later in zip(names, names[1:], strict=False):
        next_request = relay.when("up", rb"\nP src/" + re.escape(later.encode()) + rb" ")
        final_reply = relay.when("down", b"OK %d " % SIZE + digest(contents[earlier]))
        assert next_request < final_reply, (earlier, later)


def test_get_r_sends_every_g_before_the_first_files_bytes_arrive(daemon, relay, tmp_path):
    (daemon.root / "tree").mkdir()
    contents = {name: make_file(daemon.root / "tree" / name, SIZE)
                for name in ("a.bin", "b.bin", "c.bin")}
    result = run_ftpc(relay.address, "get", "-r", "tree", "-o", "back", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for name, data in contents.items():
        assert (tmp_path / "back" / name).read_bytes() == data
    last_request = relay.when("up", rb"\nG tree/c\.bin\n")
    first_bytes = relay.when("down", re.escape(contents["a.bin"][:64]))
    assert last_request < first_bytes


def test_get_r_keeps_requests_in_flight_while_it_reads_each_file(daemon, tmp_path):
    """More files than one window of requests: while it reads file k, the
    client has always sent G for files after k (a window that waits until
    it is drained, or one G per file, would not)."""
    files = 900
    (daemon.root / "t").mkdir()
    for number in range(files):
        (daemon.root / "t" / f"f{number:03d}").write_bytes(b"%d" % number)
    with daemon.client() as client:
        sent_g = 0
        seen_at_each_file = []
        send_requests, receive = client.send_requests, client.receive

        def counting_send(requests):
            nonlocal sent_g
            sent_g += sum(1 for verb, *_ in requests if verb == "G")
            send_requests(requests)

        def counting_receive(handle, count, progress=None):
            seen_at_each_file.append(sent_g)
            receive(handle, count, progress)

        client.send_requests, client.receive = counting_send, counting_receive
        summary = tree_get.get_tree(client, "t", str(tmp_path / "back"), TreeOptions(),
                                    no_bar, print)
    assert (summary.done, summary.failed) == (files, 0)
    assert len(seen_at_each_file) == files
    assert max(seen_at_each_file) == files
    assert seen_at_each_file[0] > 1
    for number, sent in enumerate(seen_at_each_file[:-1]):
        assert sent > number + 1, f"nothing was in flight after file {number}"
    assert (tmp_path / "back" / "f899").read_bytes() == b"899"


def test_put_many_goes_on_past_a_refusal_an_unreadable_file_and_a_wrong_digest(
        daemon, tmp_path, monkeypatch):
    class WrongForMarkedFiles:
        """sha256, but wrong for data that starts with BAD (as if the file
        changed while it was sent)."""
        def __init__(self, data=b""):
            self.real = hashlib.sha256(data)
            self.bad = data.startswith(b"BAD")

        def update(self, data):
            self.real.update(data)

        def hexdigest(self):
            return hashlib.sha256(b"other").hexdigest() if self.bad else self.real.hexdigest()

    fake = type("fake", (), {"sha256": WrongForMarkedFiles})
    monkeypatch.setattr(client_pipeline, "hashlib", fake)
    monkeypatch.setattr(client_transfers, "hashlib", fake)
    (daemon.root / "d").mkdir()
    good = {name: make_file(tmp_path / name, SIZE) for name in ("a", "e")}
    (tmp_path / "bad").write_bytes(b"BAD" + os.urandom(SIZE))
    uploads = [Upload(str(tmp_path / "a"), "d/a", 1_500_000_000),
               Upload(str(tmp_path / "a"), "missing/a"),
               Upload(str(tmp_path / "gone"), "d/gone"),
               Upload(str(tmp_path / "bad"), "d/bad"),
               Upload(str(tmp_path / "e"), "d/e")]
    with daemon.client() as client:
        outcomes = {upload.name: outcome for upload, outcome in client.put_many(uploads)}
        assert [e.name for e in client.list("d")] == ["a", "e"]      # the session goes on
    assert outcomes["d/a"] == (SIZE, digest(good["a"]).decode())
    assert outcomes["d/e"] == (SIZE, digest(good["e"]).decode())
    assert isinstance(outcomes["missing/a"], ServerError) and outcomes["missing/a"].code == 404
    assert isinstance(outcomes["d/gone"], LocalError)
    assert isinstance(outcomes["d/bad"], ServerError) and outcomes["d/bad"].code == 422
    assert stray_files(daemon.root) == ["d/a", "d/e"]
    assert os.stat(daemon.root / "d" / "a").st_mtime == 1_500_000_000
    assert (daemon.root / "d" / "e").read_bytes() == good["e"]


def test_put_many_stops_asking_once_told_and_finishes_what_is_under_way(daemon, tmp_path):
    sources = [make_file(tmp_path / f"s{number}", SIZE) for number in range(4)]
    uploads = [Upload(str(tmp_path / f"s{number}"), f"s{number}") for number in range(4)]
    done = []
    with daemon.client() as client:
        for upload, outcome in client.put_many(uploads, stop=lambda: len(done) >= 1):
            done.append((upload.name, outcome))
        assert [e.name for e in client.list()] == [name for name, _ in done]
    # s0 finished before stop was first asked yes; s1 was already under way then
    assert [name for name, _ in done] == ["s0", "s1"]
    assert (daemon.root / "s1").read_bytes() == sources[1]


def test_get_asks_for_the_files_time_in_the_same_round_trip_as_its_data(daemon, relay,
                                                                         tmp_path):
    data = make_file(daemon.root / "f.bin", SIZE)
    os.utime(daemon.root / "f.bin", (1_500_000_000, 1_500_000_000))
    result = run_ftpc(relay.address, "get", "f.bin", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f.bin").read_bytes() == data
    assert os.stat(tmp_path / "f.bin").st_mtime == 1_500_000_000
    requests = relay.when("up", rb"L f\.bin\nH f\.bin\nG f\.bin\n")
    assert requests < relay.when("down", rb"\nOK 1\n")       # L's reply: one row


def test_get_r_makes_each_batch_durable_before_any_of_its_names_appear(daemon, tmp_path,
                                                                       monkeypatch):
    files = tree_get.COMMIT_FILES + 10
    (daemon.root / "t").mkdir()
    for number in range(files):
        (daemon.root / "t" / f"f{number:03d}").write_bytes(b"%d" % number)
    batches = []
    real = tree_get.make_durable

    def recording(parts):
        named = [p for p in parts if os.path.exists(p.replace(".ftpc-part", "")
                                                     .replace("/.f", "/f"))]
        batches.append((list(parts), named))
        real(parts)

    monkeypatch.setattr(tree_get, "make_durable", recording)
    with daemon.client() as client:
        summary = tree_get.get_tree(client, "t", str(tmp_path / "back"), TreeOptions(),
                                    no_bar, print)
    assert (summary.done, summary.failed) == (files, 0)
    assert [len(parts) for parts, _ in batches] == [tree_get.COMMIT_FILES, 10]
    assert all(named == [] for _, named in batches)     # durable first, named after
    made_durable = {os.path.basename(p) for parts, _ in batches for p in parts}
    assert made_durable == {f".f{number:03d}.ftpc-part" for number in range(files)}
    assert sorted(os.listdir(tmp_path / "back")) == [f"f{n:03d}" for n in range(files)]


def test_get_r_that_cannot_make_files_durable_names_none_and_the_next_run_does(
        daemon, tmp_path, monkeypatch):
    (daemon.root / "t").mkdir()
    contents = {f"f{n}": make_file(daemon.root / "t" / f"f{n}", SIZE) for n in range(3)}

    def failing(parts):
        raise LocalError("cannot make the received files durable: Input/output error")

    monkeypatch.setattr(tree_get, "make_durable", failing)
    with daemon.client() as client:
        summary = tree_get.get_tree(client, "t", str(tmp_path / "back"), TreeOptions(),
                                    no_bar, print)
    assert (summary.done, summary.failed) == (0, 3)
    assert sorted(os.listdir(tmp_path / "back")) == [f".f{n}.ftpc-part" for n in range(3)]
    monkeypatch.undo()
    with daemon.client() as client:
        again = tree_get.get_tree(client, "t", str(tmp_path / "back"), TreeOptions(),
                                  no_bar, print)
    assert (again.done, again.failed) == (3, 0)
    assert {n: (tmp_path / "back" / n).read_bytes() for n in contents} == contents
    assert sorted(os.listdir(tmp_path / "back")) == sorted(contents)


def test_put_many_left_early_ends_the_connection_and_stores_nothing_more(daemon, tmp_path):
    for number in range(3):
        make_file(tmp_path / f"s{number}", SIZE)
    uploads = [Upload(str(tmp_path / f"s{number}"), f"s{number}") for number in range(3)]
    client = daemon.client()
    for upload, outcome in client.put_many(uploads):
        assert upload.name == "s0" and isinstance(outcome, tuple)
        break                   # s1's P is out: the session is out of step now
    assert client.closed
    wait_until(lambda: stray_files(daemon.root) == ["s0"], timeout=10,
               what="only the finished file stored")
