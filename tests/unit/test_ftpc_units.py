"""ftpc's pure parts: credentials order, quoting-aware completion, display."""

from __future__ import annotations

import pytest

from ftpd.client import Entry, ServerError
from ftpd.ftpc.completion import matches, render, split_partial
from ftpd.ftpc.connect import CredentialError, parse_target, resolve_login
from ftpd.ftpc.display import describe, human_size, listing_table


@pytest.fixture
def netrc_file(tmp_path):
    path = tmp_path / "netrc"
    path.write_text("machine files.lan login carol password from-netrc\n")
    path.chmod(0o600)
    return str(path)


def refuse_prompt(text):
    raise AssertionError(f"should not prompt: {text}")


def test_env_password_wins_for_a_named_user(netrc_file):
    found = resolve_login("files.lan", "carol", {"FTPC_PASSWORD": "from-env"}, netrc_file,
                          refuse_prompt)
    assert found == ("carol", "from-env")


def test_netrc_supplies_user_and_password(netrc_file):
    assert resolve_login("files.lan", None, {}, netrc_file, refuse_prompt) == \
        ("carol", "from-netrc")
    assert resolve_login("files.lan", "carol", {}, netrc_file, refuse_prompt) == \
        ("carol", "from-netrc")
    assert resolve_login("other.lan", None, {}, netrc_file, refuse_prompt) is None


def test_prompt_for_a_user_netrc_does_not_know(netrc_file):
    asked = []
    found = resolve_login("files.lan", "dave", {}, netrc_file,
                          lambda text: asked.append(text) or "typed")
    assert found == ("dave", "typed") and asked == ["Password for dave@files.lan: "]


def test_no_terminal_and_no_password_is_an_error(netrc_file, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    with pytest.raises(CredentialError, match="FTPC_PASSWORD"):
        resolve_login("files.lan", "dave", {}, netrc_file)


def test_broken_netrc_is_reported_and_ignored(tmp_path, capsys):
    path = tmp_path / "netrc"
    path.write_text("nonsense files.lan\n")
    path.chmod(0o600)
    assert resolve_login("files.lan", None, {}, str(path), refuse_prompt) is None
    assert "ignoring" in capsys.readouterr().err


@pytest.mark.parametrize("line, words, value, quote, start", [
    ("get ", ["get"], "", "", 4),
    ("get rep", ["get"], "rep", "", 4),
    ("get my\\ fi", ["get"], "my fi", "", 4),
    ('get "my fi', ["get"], "my fi", '"', 4),
    ("get 'a b' c", ["get", "a b"], "c", "", 10),
    ("put --force x", ["put", "--force"], "x", "", 12),
])
def test_split_partial(line, words, value, quote, start):
    partial = split_partial(line)
    assert (partial.words, partial.value, partial.quote, partial.start) == \
        (words, value, quote, start)


def test_matches_replace_only_what_readline_split_off():
    names = ["my file.txt", "my other.txt", "notes"]
    line = "get my\\ f"                      # readline's word starts after the space
    assert matches(split_partial(line), names, line.rindex(" ") + 1, line) == ["file.txt"]
    line = 'get "my o'
    assert matches(split_partial(line), names, line.rindex(" ") + 1, line) == ['other.txt"']
    line = "get my"
    assert matches(split_partial(line), names, 4, line) == ["my\\ file.txt", "my\\ other.txt"]


def test_render_quotes_like_the_user_started():
    assert render("a b'c", "") == "a\\ b\\'c"
    assert render("a b", "'") == "'a b'"
    assert render('say "hi"', '"') == '"say \\"hi\\""'


def test_human_sizes_and_table():
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 5 << 30)] == \
        ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 GiB"]
    lines = listing_table([Entry("b", 2048, 0), Entry("a", 1, 0)])
    assert [line.split()[-1] for line in lines[1:3]] == ["a", "b"]
    assert lines[-1] == "2 files, 2.0 KiB total"
    assert listing_table([])[-1] == "0 files, 0 B total"


def test_describe_keeps_code_and_text():
    text = describe(ServerError(507, "not enough free space"))
    assert "not enough free space" in text and "code 507" in text and "nothing was stored" in text


def test_ipv6_target_label():
    target = parse_target("[::1]:8021", 5.0, None)
    assert (target.host, target.port, target.label) == ("::1", 8021, "[::1]:8021")
    assert parse_target("files.lan", 5.0, None).label == "files.lan:8021"
    with pytest.raises(ValueError):
        parse_target("files.lan:99999", 5.0, None)


class FakeDownload:
    """Stands in for Client: serves `data` to G and its digest to H."""

    def __init__(self, data: bytes, digest: str):
        self.data, self.digest = data, digest

    def start_get(self, name, offset=0):
        return len(self.data) - offset

    def start_checked_get(self, name, offset=0):
        return len(self.data) - offset, (len(self.data), self.digest)

    def receive(self, sink, count, progress=None):
        for start in range(0, count, 1000):
            sink.write(memoryview(self.data)[start:start + 1000])

    def hash(self, name):
        return len(self.data), self.digest


def test_a_download_to_stdout_is_verified_by_default_and_not_even_hashed_without():
    import hashlib
    import io
    from ftpd.ftpc import transfer

    data = b"ftpd" * 2500
    good = hashlib.sha256(data).hexdigest()
    out = io.BytesIO()
    outcome = transfer.download_to_stream(FakeDownload(data, good), "f", out)
    assert out.getvalue() == data and outcome.sha256 == good
    with pytest.raises(transfer.VerifyError):
        transfer.download_to_stream(FakeDownload(data, "0" * 64), "f", io.BytesIO())


def test_without_verification_nothing_is_hashed(monkeypatch):
    import io
    from ftpd.ftpc import transfer

    def no_hashing():
        raise AssertionError("hashed a download that is not verified")

    monkeypatch.setattr(transfer.hashlib, "sha256", no_hashing)
    out = io.BytesIO()
    outcome = transfer.download_to_stream(FakeDownload(b"x" * 5000, "0" * 64), "f", out,
                                          verify=False)
    assert out.getvalue() == b"x" * 5000 and outcome.sha256 is None
