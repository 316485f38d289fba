"""Unit tests of the FTPD/1 codec: names, requests, replies, numbers."""

import pytest

from ftpd import protocol
from ftpd.protocol import ProtocolError


@pytest.mark.parametrize("name, wire", [
    ("my file.txt", "my%20file.txt"),
    ("100%.txt", "100%25.txt"),
    ("café.txt", "café.txt"),
    ("plain", "plain"),
])
def test_encode_name_escapes_what_the_spec_requires(name, wire):
    assert protocol.encode_name(name) == wire
    assert protocol.decode_name(wire.encode()) == name


def test_control_bytes_are_escaped_even_though_such_names_are_invalid():
    assert protocol.encode_name("tab\there") == "tab%09here"
    assert protocol.encode_name("del\x7f") == "del%7F"
    assert protocol.encode_name("a!b") == "a!b"


def test_decoder_accepts_any_escape_in_either_case():
    assert protocol.decode_name(b"%61%62c") == "abc"
    assert protocol.decode_name(b"my%2etxt") == "my.txt"
    assert protocol.decode_name(b"caf%C3%A9") == "café"


@pytest.mark.parametrize("wire", [
    b".hidden", b"%2Ehidden", b"..", b".", b"a%2Fb", b"a/b", b"a%00b", b"a%0Ab",
    b"%7F", b"a%1Fb", b"", b"%", b"abc%", b"%4", b"%zz", b"%FF%FE", b"\xff",
    b"x" * 256,
])
def test_invalid_names_are_refused_with_400(wire):
    with pytest.raises(ProtocolError) as info:
        protocol.decode_name(wire)
    assert info.value.code == 400


def test_name_length_is_counted_in_utf8_bytes():
    assert protocol.is_valid_name("x" * 255)
    assert protocol.is_valid_name("é" * 127)          # 254 bytes
    assert not protocol.is_valid_name("é" * 128)      # 256 bytes


def test_parse_request_verbs_are_case_insensitive_and_cr_is_ignored():
    assert protocol.parse_request(b"g name 5\r\n") == protocol.Request("G", (b"name", b"5"))
    assert protocol.parse_request(b"L\n") == protocol.Request("L", ())
    assert protocol.parse_request(b"q") == protocol.Request("Q", ())


@pytest.mark.parametrize("line", [b"\n", b"\r\n", b"GG x\n", b"G  x\n", b" G\n", b"G x \n",
                                  b"1\n", b"%\n"])
def test_malformed_requests_are_400(line):
    with pytest.raises(ProtocolError) as info:
        protocol.parse_request(line)
    assert info.value.code == 400


@pytest.mark.parametrize("field, value", [(b"0", 0), (b"12", 12), (b"007", 7)])
def test_numbers(field, value):
    assert protocol.parse_number(field) == value


@pytest.mark.parametrize("field", [b"-1", b"+1", b"1.5", b"", b"1e3", b"x", b"9" * 20])
def test_bad_numbers_are_400(field):
    with pytest.raises(ProtocolError) as info:
        protocol.parse_number(field)
    assert info.value.code == 400


def test_digest_any_case_is_normalised_to_lower():
    digest = "AB" * 32
    assert protocol.parse_digest(digest.encode()) == digest.lower()
    for bad in (b"ab" * 31, b"g" * 64, b"ab" * 33):
        with pytest.raises(ProtocolError):
            protocol.parse_digest(bad)


def test_replies_format_and_parse():
    assert protocol.ok(3) == b"OK 3\n"
    assert protocol.err(404, "no such file") == b"ERR 404 no such file\n"
    assert protocol.parse_reply(b"OK 12 abc\r\n") == ["12", "abc"]
    assert protocol.parse_reply(b"OK\n") == []
    with pytest.raises(ProtocolError) as info:
        protocol.parse_reply(b"ERR 421 server shutting down\n")
    assert (info.value.code, info.value.text) == (421, "server shutting down")
    with pytest.raises(ProtocolError) as info:
        protocol.parse_reply(b"HELLO\n")
    assert info.value.code == 500


def test_error_text_is_one_line():
    assert protocol.err(500, "a\nb") == b"ERR 500 a b\n"


def test_listing_entry_roundtrip():
    entry = protocol.Entry("hello world.txt", 12, 1764230461)
    line = protocol.format_entry(entry)
    assert line == b"12 1764230461 hello%20world.txt\n"
    assert protocol.parse_entry(line) == entry
    assert not entry.is_dir


def test_directory_rows_have_no_size_and_a_trailing_slash():
    entry = protocol.Entry("my photos", None, 1764230400, is_dir=True)
    line = protocol.format_entry(entry)
    assert line == b"- 1764230400 my%20photos/\n"
    assert protocol.parse_entry(line) == entry


@pytest.mark.parametrize("row", [
    b"- 1 photos", b"12 1 photos/", b"- 1 /", b"- 1 a/b/", b"1 2", b"x 1 a", b"- x a/",
])
def test_malformed_listing_rows_are_refused(row):
    with pytest.raises(ProtocolError):
        protocol.parse_entry(row)


@pytest.mark.parametrize("wire, parts", [
    (b"a/b", ("a", "b")), (b"a%2Fb", ("a", "b")), (b"my%20dir/f.txt", ("my dir", "f.txt")),
])
def test_paths_split_on_slash_or_its_escape(wire, parts):
    assert protocol.decode_path(wire) == parts


@pytest.mark.parametrize("wire", [
    b"/a", b"a/", b"a//b", b"a/./b", b"a/../b", b"..", b"%2Fa", b"a%2F", b"a/.x",
    b"x" * 4001, (b"x" * 200 + b"/") * 20 + b"x",
])
def test_invalid_paths_are_refused_with_400(wire):
    with pytest.raises(ProtocolError) as info:
        protocol.decode_path(wire)
    assert info.value.code == 400


def test_format_request_refuses_overlong_lines():
    with pytest.raises(ProtocolError):
        protocol.format_request("G", "x" * protocol.MAX_LINE)
