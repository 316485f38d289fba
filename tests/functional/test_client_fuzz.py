"""The client survives any server (issue 20): ftpd.client and ftpc against a
hostile peer (tests/fakeserver.py) whose replies hypothesis writes.

Properties: ftpd.client raises nothing but ClientError subclasses and what
it returns is well-formed; ftpc never shows a traceback, exits with a
documented status (a broken protocol is 3), lets no control character of
the server's reach the terminal, writes nothing outside its directory and
nothing partial under a final name, and refuses a listing too long to hold.

Examples per property: HYPOTHESIS_PROFILE=ci (the default, a few hundred in
all, well under two minutes) or HYPOTHESIS_PROFILE=release (the long run
docs/ftpc.md asks for before a release). The first counter-examples found
are kept below as plain regression tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Set, Tuple

import pexpect
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ftpd import protocol
from ftpd.client import (MAX_LISTING_ROWS, Client, ClientError, ConnectionLost, Entry,
                         ProtocolViolation)
from ftpd.ftpc.cli import main
from ftpd.ftpc.status import EX_CONNECTION, EX_OK, EX_REFUSED, EX_VERIFY
from tests.fakeserver import (GREETING, HostileServer, Plan, any_plans, any_reply,
                              data_strategy, get_plans, plans, sha)
from tests.ftpc_util import ftpc_command, ftpc_env, run_ftpc

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=_SLOW)
settings.register_profile("release", max_examples=5000, deadline=None,
                          suppress_health_check=_SLOW)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings(settings.get_profile(_PROFILE if _PROFILE in ("ci", "release") else "ci"))
CLIENT_FUZZ = settings(FUZZ, max_examples=FUZZ.max_examples * 2)   # the API: twice as many

TIMEOUT = 3.0           # a stall costs this; the plans end with a close, so none should
NAME = "a.txt"
# Everything a server's reach may put on a terminal, bar what ftpc itself
# prints between lines: C0 controls but LF, CR, TAB; DEL; C1 controls (UTF-8).
FORBIDDEN_OUTPUT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]")
DIGEST_REPLY = re.compile(rb"OK ([0-9]{1,19}) ([0-9a-fA-F]{64})\n")


def announced(plan: Plan) -> Set[Tuple[int, str]]:
    """Every (size, sha256) an H reply in the plan offers."""
    return {(int(size), digest.decode().lower())
            for size, digest in DIGEST_REPLY.findall(plan.stream())}


def assert_terminal_safe(output: bytes, where: str) -> None:
    found = FORBIDDEN_OUTPUT.search(output)
    assert found is None, f"{where} has control byte {found.group()!r}: {output[:300]!r}"


# -- ftpd.client --------------------------------------------------------------------------

OPERATIONS = st.lists(st.sampled_from(["list", "hash", "get", "get-object", "put", "login",
                                       "alive", "quit"]), min_size=1, max_size=4)


def check_entries(entries: List[Entry]) -> None:
    assert len(entries) <= MAX_LISTING_ROWS
    for entry in entries:
        assert protocol.name_problem(entry.name) is None, entry
        assert entry.size is None or 0 <= entry.size < 2 ** 63
        assert 0 <= entry.mtime < 2 ** 63


def run_operation(client: Client, operation: str, workdir: Path, plan: Plan) -> None:
    """One call, its result checked; ClientError (the documented family) passes."""
    try:
        if operation == "list":
            check_entries(client.list())
        elif operation == "hash":
            size, digest = client.hash(NAME)
            assert size >= 0 and re.fullmatch(r"[0-9a-f]{64}", digest)
        elif operation == "get":
            try:
                count = client.get(NAME, str(workdir / NAME))
            except ClientError:
                assert not (workdir / NAME).exists(), "a failed get left its target"
                raise
            data = (workdir / NAME).read_bytes()
            assert count == len(data) and (len(data), sha(data).decode()) in announced(plan)
        elif operation == "get-object":
            sink = io.BytesIO()
            count = client.get(NAME, sink)
            data = sink.getvalue()
            assert count == len(data) and (len(data), sha(data).decode()) in announced(plan)
        elif operation == "put":
            size, digest = client.put(io.BytesIO(b"x" * 10), "up.txt")
            assert size >= 0 and digest == sha(b"x" * 10).decode()
        elif operation == "login":
            assert isinstance(client.login("user", "secret"), str)
        elif operation == "alive":
            client.ensure_alive()
        else:
            client.quit()
    except ClientError:
        pass
    leftovers = [p.name for p in workdir.iterdir() if p.name != NAME]
    assert leftovers == [], f"temporary files left by {operation}: {leftovers}"


@CLIENT_FUZZ
@given(any_plans(), OPERATIONS)
def test_the_client_raises_only_client_errors_and_returns_only_sound_values(case, operations):
    data, plan = case
    with tempfile.TemporaryDirectory() as tmp, HostileServer(plan) as server:
        workdir = Path(tmp)
        try:
            client = Client("127.0.0.1", server.port, timeout=TIMEOUT)
        except ClientError:
            return
        with client:
            for operation in operations:
                run_operation(client, operation, workdir, plan)
                if client.closed:       # from then on every call is refused, nothing read
                    with pytest.raises(ConnectionLost):
                        client.list()
                (workdir / NAME).unlink(missing_ok=True)


@FUZZ
@given(data_strategy().flatmap(lambda data: st.tuples(st.just(data), get_plans(data))))
def test_a_verified_get_keeps_a_file_only_if_it_matches_what_the_server_announced(case):
    data, plan = case
    with tempfile.TemporaryDirectory() as tmp, HostileServer(plan) as server:
        target = Path(tmp) / NAME
        try:
            with Client("127.0.0.1", server.port, timeout=TIMEOUT) as client:
                client.get(NAME, str(target))
        except ClientError:
            assert list(Path(tmp).iterdir()) == []      # nothing partial, no temporary
            return
        got = target.read_bytes()
        assert (len(got), sha(got).decode()) in announced(plan)


# -- counter-examples the properties found first (kept as plain tests) --------------------

def client_error_for(chunks: Sequence[bytes], call) -> ClientError:
    with HostileServer(Plan(GREETING, list(chunks))) as server:
        with Client("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            with pytest.raises(ClientError) as info:
                call(client)
            assert client.closed
    return info.value


@pytest.mark.parametrize("row", [b"0 10 %1B%5B31mRED\n", b"0 10 ..%2F..%2Fevil.txt\n",
                                 b"0 10 a%0Ab\n", b"0 10 ..\n", b"0 10 %2Fetc%2Fpasswd\n",
                                 b"0 10 a%00b\n", b"-5 10 a\n", b"1e3 10 a\n",
                                 b"99999999999999999999 10 a\n", b"\x1b[2J\n"])
def test_a_listing_row_that_breaks_the_protocol_is_a_protocol_violation(row):
    # It was ProtocolError, outside ClientError: a traceback in `ftpc HOST list`.
    error = client_error_for([b"OK 1\n" + row], lambda c: c.list())
    assert isinstance(error, ProtocolViolation)
    assert "the server broke the protocol: bad listing row" in str(error)
    assert "\x1b" not in str(error)


@pytest.mark.parametrize("count", [b"\x1b[31mRED\x1b[0m", b"\xc2\xb2", b"-1", b"", b"0x10"])
def test_a_listing_count_that_is_no_number_is_a_protocol_violation(count):
    error = client_error_for([b"OK " + count + b"\n"], lambda c: c.list())
    assert isinstance(error, ProtocolViolation) and "bad numbers" in str(error)


def test_a_count_of_five_thousand_digits_is_a_protocol_violation_not_a_value_error():
    # int() refuses more than 4300 digits with ValueError (CVE-2020-10735).
    reply = b"OK " + b"9" * 5000 + b"\n"
    error = client_error_for([reply], lambda c: c.get(NAME, io.BytesIO(), verify=False))
    assert isinstance(error, ProtocolViolation) and len(str(error)) < 300


def test_an_a_reply_without_a_user_or_with_a_bad_one_is_a_protocol_violation():
    for reply in (b"OK\n", b"OK %\n", b"OK %FF\n"):
        error = client_error_for([reply], lambda c: c.login("u", "p"))
        assert isinstance(error, ProtocolViolation)


def test_a_listing_of_ten_million_rows_is_refused_before_any_row_is_read():
    endless = [b"OK 10000000\n" + b"1 2 name\n" * 200_000]        # 1.8 MB of rows follow
    tracemalloc.start()
    try:
        error = client_error_for(endless, lambda c: c.list())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, ProtocolViolation)
    assert f"more than this client accepts ({MAX_LISTING_ROWS})" in str(error)
    assert peak < 8 << 20, f"{peak} bytes allocated while refusing"


def test_a_listing_at_the_limit_is_read():
    rows = b"".join(b"%d 0 f%d\n" % (n, n) for n in range(3))
    with HostileServer(Plan(GREETING, [b"OK 3\n" + rows])) as server:
        with Client("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            assert [e.name for e in client.list()] == ["f0", "f1", "f2"]


# -- ftpc, in-process ---------------------------------------------------------------------

@contextlib.contextmanager
def sandbox() -> Iterator[Tuple[Path, Path]]:
    """A fresh (work, home) pair in a temporary directory; ftpc runs in work."""
    with tempfile.TemporaryDirectory() as tmp:
        work, home = Path(tmp, "work"), Path(tmp, "home")
        work.mkdir()
        home.mkdir()
        old_cwd, old_env = os.getcwd(), dict(os.environ)
        os.environ["HOME"] = str(home)
        os.environ.pop("FTPC_PASSWORD", None)
        os.chdir(work)
        try:
            yield work, home
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)
            assert sorted(os.listdir(tmp)) == ["home", "work"], "written outside work/"
            assert os.listdir(home) == [], "written into HOME"


def ftpc_main(argv: Sequence[str]) -> Tuple[int, bytes, bytes]:
    """main(argv) with stdout and stderr captured as bytes (strict UTF-8,
    as on a terminal); an exception ftpc did not expect propagates."""
    out, err = io.BytesIO(), io.BytesIO()
    wrappers = [io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
                for raw in (out, err)]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = wrappers
    try:
        status = main(list(argv))
    finally:
        sys.stdout, sys.stderr = saved
        for wrapper in wrappers:
            wrapper.flush()
            wrapper.detach()        # else collecting it closes the BytesIO
    return status, out.getvalue(), err.getvalue()


def run_command(plan: Plan, *command: str) -> Tuple[int, bytes, bytes]:
    with HostileServer(plan) as server:
        status, out, err = ftpc_main(["--timeout", str(TIMEOUT), server.address, *command])
    assert_terminal_safe(err, "stderr")
    if status != EX_OK:
        assert err.startswith(b"ftpc: ") and len(err.strip()) > len(b"ftpc:")
    return status, out, err


@FUZZ
@given(plans(st.lists(any_reply(b"data"), max_size=3)))
def test_ftpc_list_exits_with_a_documented_status_and_prints_nothing_raw(plan):
    with sandbox() as (work, _):
        status, out, err = run_command(plan, "list")
        assert os.listdir(work) == []
    assert_terminal_safe(out, "stdout")
    assert status in (EX_OK, EX_REFUSED, EX_CONNECTION), (status, err)
    if status == EX_OK:
        assert re.search(rb"\d+ files?, .* total\n\Z", out), out


@FUZZ
@given(plans(st.lists(any_reply(b"data"), max_size=3)))
def test_ftpc_hash_prints_a_digest_or_fails_cleanly(plan):
    with sandbox() as (work, _):
        status, out, err = run_command(plan, "hash", NAME)
        assert os.listdir(work) == []
    assert status in (EX_OK, EX_REFUSED, EX_CONNECTION), (status, err)
    if status == EX_OK:
        assert re.fullmatch(rb"[0-9a-f]{64}  a\.txt\n", out), out


GET_FLAGS = st.sampled_from([[], ["--no-verify"], ["--continue"], ["-o", "-"], ["--force"]])


@FUZZ
@given(data_strategy().flatmap(lambda data: st.one_of(get_plans(data), any_plans().map(
    lambda case: case[1]))), GET_FLAGS)
def test_ftpc_get_keeps_a_final_file_only_when_it_succeeded_and_verified(plan, flags):
    with sandbox() as (work, _):
        status, out, err = run_command(plan, "get", NAME, *flags)
        files = set(os.listdir(work))
        final = work / NAME
        kept = final.read_bytes() if final.exists() else None
    assert status in (EX_OK, EX_REFUSED, EX_CONNECTION, EX_VERIFY), (status, err)
    assert files <= {NAME, f".{NAME}.ftpc-part"}, files
    if flags != ["-o", "-"]:
        assert_terminal_safe(out, "stdout")
        assert (kept is not None) == (status == EX_OK), (status, err)
    if kept is not None and "--no-verify" not in flags:
        assert (len(kept), sha(kept).decode()) in announced(plan)


@FUZZ
@given(plans(st.lists(any_reply(b"x" * 10), max_size=3)))
def test_ftpc_put_fails_cleanly_and_leaves_the_local_file_alone(plan):
    with sandbox() as (work, _):
        (work / "up.bin").write_bytes(b"x" * 10)
        status, out, err = run_command(plan, "put", "up.bin")
        assert os.listdir(work) == ["up.bin"] and (work / "up.bin").read_bytes() == b"x" * 10
    assert_terminal_safe(out, "stdout")
    assert status in (EX_OK, EX_REFUSED, EX_CONNECTION), (status, err)


# -- ftpc as people run it: a process, and the shell on a terminal ------------------------

HOSTILE_LISTING = (b"OK 3\n0 1764230400 %1B%5B31mRED\n0 1764230400 ..%2F..%2Fevil.txt\n"
                   b"0 1764230400 a%0Ab\n")


def test_the_issue_s_listing_is_exit_3_naming_what_the_server_sent(tmp_path):
    with HostileServer(Plan(GREETING, [HOSTILE_LISTING])) as server:
        result = run_ftpc(server.address, "list", home=tmp_path, timeout=30)
    assert result.returncode == EX_CONNECTION, result.stderr
    assert b"Traceback" not in result.stderr
    assert result.stderr.startswith(b"ftpc: the server broke the protocol: bad listing row "
                                    b"'0 1764230400 %1B%5B31mRED'")
    assert_terminal_safe(result.stdout + result.stderr, "output")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("chunks,status,said", [
    ([b"ERR 404 \x1b[31mgone\x1b]0;pwned\x07\n" * 2], EX_REFUSED,       # to H, then G
     b"server refused: \\x1b[31mgone\\x1b]0;pwned\\x07 (code 404)"),
    ([b"OK 5 " + sha(b"abcde") + b"\nOK 5\nabc"], EX_CONNECTION, b"download cut short"),
    ([b"OK \xc2\xb2 " + sha(b"") + b"\n"], EX_CONNECTION,
     b"the server broke the protocol: bad numbers"),
    ([b"OK 9 " + b"0" * 64 + b"\nOK 9\n123456789"], EX_VERIFY, b"does not match"),
])
def test_ftpc_get_in_a_process_says_what_went_wrong(tmp_path, chunks, status, said):
    # ftpc get asks L first, for the file's time (it keeps the server's mtime)
    row = b"OK 1\n9 1764230400 " + NAME.encode() + b"\n"
    with HostileServer(Plan(GREETING, [row] + chunks)) as server:
        result = run_ftpc(server.address, "get", NAME, home=tmp_path, timeout=30)
    assert result.returncode == status, result.stderr
    assert b"Traceback" not in result.stderr and said in result.stderr, result.stderr
    assert_terminal_safe(result.stdout + result.stderr, "output")
    assert not (tmp_path / NAME).exists()


class HostileShell:
    def __init__(self, server: HostileServer, home: Path):
        command = ftpc_command("--timeout", str(TIMEOUT), server.address)
        self.child = pexpect.spawn(command[0], command[1:], cwd=str(home),
                                   env=ftpc_env(home), timeout=20)
        self.seen = b""

    def until_prompt(self) -> bytes:
        self.child.expect(rb"\)?> ")
        self.seen += self.child.before + self.child.after
        return self.child.before

    def run(self, line: str) -> bytes:
        self.child.sendline(line)
        return self.until_prompt()

    def close(self) -> Optional[int]:
        self.child.sendline("quit")
        self.child.expect(pexpect.EOF)
        self.seen += self.child.before
        self.child.close()
        return self.child.exitstatus


@pytest.mark.parametrize("greeting,chunks,command,shows", [
    (b"OK FTPD/1 \x1b]0;pwned\x07\x1b[2J hi\n", [b"OK 0\n"], "ls", b"0 files"),
    (GREETING, [HOSTILE_LISTING], "ls", b"the server broke the protocol: bad listing row"),
    (GREETING, [b"ERR 421 \x1b[5mbye\n"], "hash a.txt", b"server refused: \\x1b[5mbye"),
    (GREETING, [b"OK 1\n0 1764230400 %C2%9B31mRED\n"], "ls", b"\\x9b31mRED"),
])
def test_the_shell_on_a_terminal_survives_and_escapes_what_the_server_sent(
        tmp_path, greeting, chunks, command, shows):
    with HostileServer(Plan(greeting, chunks)) as server:
        shell = HostileShell(server, tmp_path)
        shell.until_prompt()
        shown = shell.run(command)
        shell.run("lls")            # still alive and answering
        status = shell.close()
    assert shows in shown, shown
    assert b"Traceback" not in shell.seen and status == EX_OK
    # What a terminal gets: the shell's own CR LF line ends, nothing the server chose.
    assert_terminal_safe(shell.seen, "terminal")
    assert b"\x1b" not in shell.seen.replace(b"\x1b[?1034h", b"")


def test_a_reply_nobody_asked_for_is_noticed_before_the_next_command(tmp_path):
    # The listing's rows arrive with an extra line behind them: by the next
    # command the shell sees it waiting, says the session ended and reconnects.
    plan = Plan(GREETING, [b"OK 0\nOK 1\n0 0 evil.exe\n", b"OK 0\n"])
    with HostileServer(plan) as server:
        shell = HostileShell(server, tmp_path)
        shell.until_prompt()
        shell.run("ls")
        second = shell.run("ls")
        shell.close()
    assert b"reply nobody asked for" in second and b"evil.exe" not in second, second
    assert b"Traceback" not in shell.seen
