"""Property tests for the FTPD/1 codec and the name rules (protocol.md §1-2).

The rules are restated here independently of ftpd/protocol.py, so a change
that loosens the code is caught by the oracle, not confirmed by it."""

import re
import string

import pytest
from hypothesis import example, given, settings, strategies as st

from ftpd import protocol
from ftpd.protocol import ProtocolError

settings.register_profile("ftpd", max_examples=400, deadline=None)
settings.load_profile("ftpd")


def oracle_valid(raw: bytes) -> bool:
    """protocol.md 'Valid names', applied to the decoded bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return (1 <= len(raw) <= 255 and not text.startswith(".") and "/" not in text
            and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text))


def oracle_decode(field: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"%":
            hexpart = field[i + 1:i + 3]
            if len(hexpart) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in hexpart):
                raise ValueError("bad escape")
            out.append(int(hexpart, 16))
            i += 3
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


valid_names = st.text(min_size=1, max_size=120).filter(
    lambda s: oracle_valid(s.encode("utf-8", "surrogatepass")))
name_like_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=80).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from([b"%", b"2", b"F", b"e", b"E", b".", b"/", b"%2F", b"%2E", b"%00",
                              b"%25", b"a", b"\xc3", b"\xa9", b"%C3", b"%A9", b"%7F", b" "]),
             max_size=40).map(b"".join),
)


@given(valid_names)
def test_valid_names_round_trip_through_the_wire_form(name):
    wire = protocol.encode_name(name)
    raw = wire.encode("utf-8")
    assert protocol.decode_name(raw) == name
    # The wire form has no space, no control byte, and only well-formed escapes.
    assert not any(b <= 0x20 or b == 0x7F for b in raw)
    assert re.fullmatch(rb"(?:[^%]|%[0-9A-F]{2})*", raw)


@given(name_like_bytes)
@example(b"..")
@example(b"%2E%2E")
@example(b"a%2Fb")
@example(b"%C3")
@example(b"x" * 256)
def test_decode_name_accepts_exactly_what_the_rules_allow(field):
    try:
        expected = oracle_decode(field)
    except ValueError:
        expected = None
    try:
        name = protocol.decode_name(field)
    except ProtocolError as exc:
        assert exc.code == 400
        assert expected is None or not oracle_valid(expected)
        return
    assert expected is not None and oracle_valid(expected)
    assert name.encode("utf-8") == expected


@given(st.binary(max_size=300))
def test_either_case_of_hex_decodes_the_same(raw):
    upper = "".join(f"%{b:02X}" for b in raw).encode()
    lower = upper.lower()
    assert protocol.percent_decode(upper) == protocol.percent_decode(lower) == raw


@given(st.text(max_size=200))
def test_free_text_fields_round_trip(text):
    wire = protocol.encode_text(text)
    assert " " not in wire and "\n" not in wire
    assert protocol.decode_text(wire.encode("utf-8")) == text


fields = st.text(alphabet=st.characters(blacklist_characters=" \n\r",
                                        blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(st.sampled_from("LGPHAQlgphaq"), st.lists(fields, max_size=4))
def test_requests_round_trip(verb, args):
    request = protocol.parse_request(protocol.format_request(verb, *args))
    assert request.verb == verb.upper()
    assert request.args == tuple(a.encode("utf-8") for a in args)


@given(st.binary(max_size=5000))
def test_arbitrary_lines_raise_only_protocol_errors(line):
    for parse in (protocol.parse_request, protocol.decode_name, protocol.decode_text,
                  protocol.parse_number, protocol.parse_digest, protocol.parse_reply,
                  protocol.parse_entry):
        try:
            parse(line)
        except ProtocolError:
            pass


@given(st.binary(max_size=200))
def test_parsed_requests_have_a_one_letter_verb_and_no_empty_field(line):
    try:
        request = protocol.parse_request(line)
    except ProtocolError as exc:
        assert exc.code == 400
        return
    assert request.verb in string.ascii_uppercase
    assert all(arg and b" " not in arg for arg in request.args)
    assert not any(b"\n" in arg for arg in request.args[:-1])


@given(st.integers(min_value=0, max_value=2 ** 63 - 1))
def test_numbers_round_trip(number):
    assert protocol.parse_number(str(number).encode()) == number


@given(st.one_of(st.integers(min_value=2 ** 63), st.integers(max_value=-1)))
def test_out_of_range_numbers_are_refused(number):
    with pytest.raises(ProtocolError):
        protocol.parse_number(str(number).encode())


@given(st.binary(min_size=32, max_size=32), st.booleans())
def test_digests_are_accepted_in_either_case_and_normalised(raw, upper):
    text = raw.hex().upper() if upper else raw.hex()
    assert protocol.parse_digest(text.encode()) == raw.hex()


@given(st.sampled_from(sorted(protocol.CODES)), st.text(max_size=100))
def test_error_replies_round_trip_their_code(code, text):
    line = protocol.err(code, text)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    with pytest.raises(ProtocolError) as info:
        protocol.parse_reply(line)
    assert info.value.code == code


@given(st.integers(0, 2 ** 63 - 1), st.integers(0, 2 ** 40), valid_names)
def test_listing_lines_round_trip(size, mtime, name):
    for entry in (protocol.Entry(name, size, mtime), protocol.Entry(name, None, mtime, True)):
        line = protocol.format_entry(entry)
        assert line.count(b"\n") == 1
        assert protocol.parse_entry(line) == entry


@given(st.text(max_size=80))
def test_the_quick_name_check_agrees_with_the_full_rules(name):
    assert protocol.is_valid_name(name) == (protocol.name_problem(name) is None)
