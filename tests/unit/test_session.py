"""Per-command error cases, each against a real Session served in this process
over a socketpair (tests/harness.py LocalSession): every bad request gets
its one ERR line and the session goes on."""

import pytest

from ftpd.server.session import COMMANDS
from tests.harness import LocalSession


def bad_arities():
    """For every verb of the dispatch table: one field too few and one too many."""
    for verb, command in sorted(COMMANDS.items()):
        if command.min_args > 0:
            yield verb, command.min_args - 1
        yield verb, command.max_args + 1


def still_serves(session: LocalSession) -> bool:
    return session.ask(b"L\n").startswith(b"OK ")


def test_the_greeting_is_not_part_of_serving_one_request(local_session):
    assert local_session.ask(b"L\n") == b"OK 0\n"


@pytest.mark.parametrize("request_line, reply", [
    (b"Z x\n", b"ERR 400 unknown command\n"),
    (b"LIST\n", b"ERR 400 unknown command\n"),        # verbs are one letter
    (b"1\n", b"ERR 400 unknown command\n"),
    (b"\n", b"ERR 400 empty request\n"),
    (b"G  a\n", b"ERR 400 fields must be separated by one space\n"),
])
def test_a_malformed_request_is_400_and_the_session_goes_on(local_session, request_line,
                                                            reply):
    assert local_session.ask(request_line) == reply
    assert still_serves(local_session)


def test_verbs_are_not_case_sensitive(local_session):
    assert local_session.ask(b"l\n") == b"OK 0\n"


@pytest.mark.parametrize("verb, count", list(bad_arities()))
def test_a_wrong_number_of_fields_is_400(local_session, verb, count):
    fields = " ".join(["a"] * count)
    line = f"{verb} {fields}".rstrip() + "\n"
    assert local_session.ask(line.encode()) == b"ERR 400 wrong number of fields\n"
    assert still_serves(local_session)


@pytest.mark.parametrize("request_line", [
    b"G %FF\n",           # not UTF-8
    b"H ..\n",
    b"G .\n",
    b"P .. 1\n",
    b"H %00\n",
])
def test_an_invalid_name_is_400_before_anything_is_touched(local_session, request_line):
    reply = local_session.ask(request_line)
    assert reply.startswith(b"ERR 400 ") and reply.endswith(b"\n"), reply
    assert local_session.library.list() == (0, [])
    assert still_serves(local_session)


@pytest.mark.parametrize("request_line", [b"G missing\n", b"G missing 0\n", b"H missing\n"])
def test_a_missing_file_is_404(local_session, request_line):
    assert local_session.ask(request_line).startswith(b"ERR 404 ")
    assert still_serves(local_session)


def test_an_offset_past_the_end_is_416_and_the_session_goes_on(local_session, tmp_path):
    (tmp_path / "library" / "abc").write_bytes(b"abc")
    for offset in (4, 1 << 40):
        assert local_session.ask(b"G abc %d\n" % offset) == \
            b"ERR 416 offset beyond end of file (3 bytes)\n"
    assert local_session.ask(b"H abc\n").startswith(b"OK 3 ")


def test_a_bad_offset_or_size_is_400(local_session, tmp_path):
    (tmp_path / "library" / "abc").write_bytes(b"abc")
    for line in (b"G abc -1\n", b"G abc x\n", b"P new 1x\n"):
        assert local_session.ask(line).startswith(b"ERR 400 "), line
    assert not (tmp_path / "library" / "new").exists()
    assert still_serves(local_session)


def test_upload_without_write_access_is_401_for_anonymous(tmp_path):
    with LocalSession(tmp_path / "library", {"access": {"anonymous": "read"}}) as session:
        assert session.ask(b"P new 1\n") == b"ERR 401 login required\n"
        assert session.ask(b"L\n") == b"OK 0\n"
    assert not (tmp_path / "library" / "new").exists()
