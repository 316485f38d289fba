"""The benchmark's own logic: alternation, medians, ratios, the tables, and a
--quick run against ftpd and rsync (no vsftpd, so no root needed for it).
Timing targets are the bench's business, not the tests': only correctness
is checked here."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench import run, tables
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
    assert tables.ratio(3.0, 2.0) == 1.5
    assert tables.ratio(0, 0) == 1.0          # zero errors on both sides: equal
    assert tables.ratio(5, 0) is None
    assert tables.ratio(None, 2.0) is None


def test_table_shows_values_ratios_and_targets():
    result = {"vsftpd": {"get_s": 2.0, "burst_errors": 0}, "ftpd-fork": {"get_s": 2.1}}
    text = run.table(result, ["vsftpd", "ftpd-fork"], run.FULL)
    [get_row] = [line for line in text.splitlines() if line.startswith("| get 1 GiB")]
    assert get_row.split(" | ")[1:] == ["2.000", "2.100", "**1.05**", "≤ 1.05 |"]
    assert "| metric | vsftpd | ftpd-fork | ftpd-fork/vsftpd | target |" in text


def target_row(text, start):
    [line] = [line for line in text.splitlines() if line.startswith("| " + start)]
    return line.split(" | ")[1:]


def test_targets_table_divides_by_each_rows_baseline_and_gives_a_verdict():
    result = {"vsftpd": {"user_get_s": 1.0}, "rsync": {"tree_put_s": 4.0},
              "cpython-floor": {"greet_p99_ms": 1.0},
              "ftpd-fork": {"user_get_s": 1.2, "tree_put_s": 5.0, "greet_p99_ms": 2.0,
                            "h_kept_ms": 0.2},
              "ftpd-thread": {"user_get_s": 1.4, "greet_p99_ms": 0.5, "h_kept_ms": 6.0}}
    names = ["vsftpd", "ftpd-fork", "ftpd-thread", "cpython-floor", "rsync"]
    text = run.targets_table(result, names, run.FULL)
    assert target_row(text, "`ftpc get` 1 GiB") == [
        "vsftpd 1.000", "1.200", "**1.20**", "1.400", "**1.40**", "≤ 1.3",
        "met (fork), not met (thread) |"]
    assert target_row(text, "`ftpc put -r` of 10,000 files of 4 KiB") == [
        "rsync 4.000", "5.000", "**1.25**", "–", "–", "≤ 1", "not met |"]
    # the floor forks: thread mode is not compared with it
    assert target_row(text, "connect to greeting p99") == [
        "cpython-floor 1.000", "2.000", "**2.00**", "–", "–", "≤ 1.3", "not met |"]
    assert target_row(text, "`H` of a 1 GiB file") == [
        "–", "0.200", "–", "6.000", "–", "≤ 5 ms", "met (fork), not met (thread) |"]
    # nothing measured: no verdict
    assert target_row(text, "second `put -r`")[-2:] == ["≤ 1", " |"]
    assert len(text.splitlines()) == 2 + len(tables.targets(run.FULL))


def test_unknown_family_is_refused_before_anything_starts(capsys):
    assert run.main(["--quick", "--only", "get,nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="the bench compiles its C client: no C compiler here")
@pytest.mark.skipif(shutil.which("rsync") is None and os.geteuid() != 0,
                    reason="the tree families need rsync, which only root can install")
def test_quick_run_against_ftpd_measures_every_metric(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "run.py"), "--quick", "--no-vsftpd",
         "--json", str(out)],
        capture_output=True, text=True, timeout=240, env=project_env(), cwd=tmp_path)
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
        # H answered from the kept digest, and without it (hashing 32 MiB) too
        assert 0 < medians["h_kept_ms"] <= medians["h_kept_max_ms"]
        assert medians["h_hashed_ms"] > 0
    trees = ("tree_put_s", "tree_get_s", "tree_again_s", "bigtree_put_s", "bigtree_get_s")
    for name in ("ftpd-fork", "rsync"):        # trees: the first ftpd mode against rsync
        assert all(report["medians"][name][metric] > 0 for metric in trees), name
    assert set(report["medians"]["rsync"]) == set(trees)
    assert not set(report["medians"]["ftpd-thread"]) & set(trees)
    floor = report["medians"]["cpython-floor"]       # only what a bare fork server shows
    assert set(floor) == {"sessions_s", "burst_s", "burst_served", "burst_errors",
                          "greet_p50_ms", "greet_p99_ms", "idle_uss_mib", "idle_pss_mib"}
    assert floor["burst_errors"] == 0 and floor["idle_uss_mib"] > 0
    assert "| get 32 MiB to /dev/null (s) |" in done.stdout
    assert "| cpython-floor | cpython-floor/vsftpd |" in done.stdout
    assert "| rsync |" not in done.stdout                # a baseline, not a column
    for target in tables.targets(run.QUICK):            # every target has its line
        assert f"| {target.label} |" in done.stdout
    assert target_row(done.stdout, "`ftpc put -r` of 200 files of 4 KiB")[0].startswith(
        "rsync ")
