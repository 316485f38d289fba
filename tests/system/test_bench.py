"""The benchmark's own logic: alternation, medians, ratios, the table, and a
--quick run against ftpd alone (no vsftpd, no root needed). Timing targets
are the bench's business, not the tests': only correctness is checked here."""

import json
import shutil
import subprocess
import sys

import pytest

from bench import run
from tests.harness import PROJECT, project_env


class Named:
    def __init__(self, name):
        self.name = name


def test_rounds_alternate_the_order_of_the_contestants():
    a, b, c = Named("a"), Named("b"), Named("c")
    orders = [[x.name for x in run.alternating([a, b, c], n)] for n in range(4)]
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"], ["c", "b", "a"]]


def test_medians_and_ratios():
    result = run.medians({"vsftpd": {"get_s": [3.0, 1.0, 2.0]}, "ftpd-fork": {"get_s": [2, 4]}})
    assert result == {"vsftpd": {"get_s": 2.0}, "ftpd-fork": {"get_s": 3.0}}
    assert run.ratio(3.0, 2.0) == 1.5
    assert run.ratio(0, 0) == 1.0          # zero errors on both sides: equal
    assert run.ratio(5, 0) is None
    assert run.ratio(None, 2.0) is None


def test_table_shows_values_ratios_and_targets():
    result = {"vsftpd": {"get_s": 2.0, "burst_errors": 0}, "ftpd-fork": {"get_s": 2.1}}
    text = run.table(result, ["vsftpd", "ftpd-fork"], run.FULL)
    [get_row] = [line for line in text.splitlines() if line.startswith("| get 1 GiB")]
    assert get_row.split(" | ")[1:] == ["2.000", "2.100", "**1.05**", "≤ 1.05 |"]
    assert "| metric | vsftpd | ftpd-fork | ftpd-fork/vsftpd | target |" in text


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="the bench compiles its C client: no C compiler here")
def test_quick_run_against_ftpd_measures_every_metric(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "run.py"), "--quick", "--no-vsftpd",
         "--json", str(out)],
        capture_output=True, text=True, timeout=90, env=project_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == []
    for name in ("ftpd-fork", "ftpd-thread"):
        medians = report["medians"][name]
        for metric in ("get_s", "put_s", "sessions_s", "burst_s", "greet_p99_ms",
                       "idle_uss_mib", "user_get_s", "user_put_s"):
            assert medians[metric] > 0, (name, metric)
        assert medians["burst_errors"] == 0
        assert medians["greet_p50_ms"] <= medians["greet_p99_ms"]
    floor = report["medians"]["cpython-floor"]       # only what a bare fork server shows
    assert set(floor) == {"sessions_s", "burst_s", "burst_served", "burst_errors",
                          "greet_p50_ms", "greet_p99_ms", "idle_uss_mib", "idle_pss_mib"}
    assert floor["burst_errors"] == 0 and floor["idle_uss_mib"] > 0
    assert "| get 32 MiB to /dev/null (s) |" in done.stdout
    assert "| cpython-floor | cpython-floor/vsftpd |" in done.stdout
