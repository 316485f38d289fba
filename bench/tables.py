"""The report's two tables, from the medians of one run: every metric side
by side with its ratio over vsftpd, then issue 14's targets, each a line
with its baseline from the same run, the ratio, the target and a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

GiB, MiB = 1 << 30, 1 << 20
Medians = Dict[str, Dict[str, float]]
NOT_SERVERS = ("vsftpd", "rsync")       # baselines, not columns of their own


def ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    if value is None or base is None:
        return None
    if base == 0:
        return 1.0 if value == 0 else None
    return value / base


def fmt(value: Optional[float], as_ratio: bool = False) -> str:
    if value is None:
        return "–"
    if as_ratio:
        return f"**{value:.2f}**"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def size_text(size: int) -> str:
    return f"{size / GiB:g} GiB" if size >= GiB else f"{size // MiB} MiB"


def rows(sizes: dict) -> List[tuple]:
    """(metric, label, target ratio or None) in table order."""
    big = size_text(sizes["big"])
    small = f"{sizes['small'] / MiB:g} MiB"
    return [
        ("get_s", f"get {big} to /dev/null (s)", 1.05),
        ("put_s", f"put {big}, SHA-256 + atomic commit (s)", 1.25),
        ("sessions_s", f"{sizes['sessions']} sessions, {sizes['inflight']} in flight, "
                       f"get {small} each (s)", 0.7),
        ("burst_s", f"burst of {sizes['burst']} connects: time to greet all (s, at most "
                    f"{sizes['burst_timeout']})", None),
        ("burst_errors", f"burst of {sizes['burst']} connects: not greeted within "
                         f"{sizes['burst_timeout']} s", None),
        ("greet_p50_ms", f"connect to greeting p50 over {sizes['latency']} (ms)", None),
        ("greet_p99_ms", f"connect to greeting p99 over {sizes['latency']} (ms)", 1.0),
        ("idle_uss_mib", f"USS per idle session, {sizes['idle']} idle (MiB)", None),
        ("idle_pss_mib", f"PSS growth per idle session, {sizes['idle']} idle (MiB)", None),
        ("user_get_s", f"user client get {big} (curl / ftpc) (s)", None),
        ("user_put_s", f"user client put {big} (curl / ftpc) (s)", None),
        ("put_parallel_s", f"{sizes['parallel']} parallel puts of {sizes['medium'] // MiB} MiB "
                           "(s)", None),
        ("crash_survivors", f"other sessions alive after one of {sizes['crash']} crashes "
                            "(fraction, higher is better)", None),
    ]


def table(result: Medians, names: Sequence[str], sizes: dict) -> str:
    ftpds = [n for n in names if n not in NOT_SERVERS]
    head = ["metric", "vsftpd"] + [c for n in ftpds for c in (n, f"{n}/vsftpd")] + ["target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric, label, target in rows(sizes):
        if not any(metric in found for found in result.values()):
            continue            # a family left out with --only
        base = result.get("vsftpd", {}).get(metric)
        cells = [label, fmt(base)]
        for name in ftpds:
            value = result.get(name, {}).get(metric)
            cells += [fmt(value), fmt(ratio(value, base), as_ratio=True)]
        cells.append(f"≤ {target}" if target else _target_note(metric))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _target_note(metric: str) -> str:
    return {"burst_errors": "0", "idle_uss_mib": "≤ 1 MiB (fork)"}.get(metric, "")


@dataclass(frozen=True)
class Target:
    """One line of the targets table: `metric` of each ftpd over the same
    metric of `baseline` (a contestant of the same run), or, with no
    baseline, the value itself against `limit`."""

    label: str
    metric: str
    baseline: Optional[str]
    limit: Optional[float]              # None: no target, shown for the reading
    fork_only: bool = False             # the floor is a fork server: only ftpd-fork compares
    unit: str = ""                      # of an absolute limit


def targets(sizes: dict) -> List[Target]:
    big = size_text(sizes["big"])
    tree = f"{sizes['tree_files']:,} files of {sizes['tree_file_size'] // 1024} KiB"
    bigtree = f"a tree of one {big} file and {sizes['bigtree_files']} small ones"
    return [
        Target(f"`ftpc get` {big}, verified, vs `curl` from vsftpd (s)", "user_get_s",
               "vsftpd", 1.3),
        Target(f"`ftpc put` {big}, verified, vs `curl -T` to vsftpd (s)", "user_put_s",
               "vsftpd", 1.3),
        Target(f"`ftpc put -r` of {tree} vs `rsync -a` to rsync:// (s)", "tree_put_s",
               "rsync", 1.0),
        Target("`ftpc get -r` of the same tree vs `rsync -a` from rsync:// (s)", "tree_get_s",
               "rsync", 1.0),
        Target("second `put -r` of the unchanged tree vs rsync's no-op run (s)",
               "tree_again_s", "rsync", 1.0),
        Target(f"`ftpc put -r` of {bigtree} vs `rsync -a` (s; issue 13)", "bigtree_put_s",
               "rsync", None),
        Target(f"`ftpc get -r` of {bigtree} vs `rsync -a` (s; issue 13)", "bigtree_get_s",
               "rsync", None),
        Target(f"{sizes['sessions']} sessions (s; the inverse of sessions/s) over the "
               "CPython floor", "sessions_s", "cpython-floor", 1.3, fork_only=True),
        Target("connect to greeting p99 (ms) over the CPython floor", "greet_p99_ms",
               "cpython-floor", 1.3, fork_only=True),
        Target("USS per idle session (MiB) over the CPython floor", "idle_uss_mib",
               "cpython-floor", 1.3, fork_only=True),
        Target(f"`H` of a {big} file stored by `P` (ms, median)", "h_kept_ms", None, 5.0,
               unit=" ms"),
        Target("`H` of that file with its digest record removed (ms)", "h_hashed_ms",
               None, None),
    ]


def targets_table(result: Medians, names: Sequence[str], sizes: dict) -> str:
    ftpds = [n for n in names if n.startswith("ftpd-")]
    head = ["target (issue 14)", "baseline"] + [c for n in ftpds for c in (n, "ratio")]
    lines = ["| " + " | ".join(head + ["target", "verdict"]) + " |",
             "|" + "---|" * (len(head) + 2)]
    for target in targets(sizes):
        base = result.get(target.baseline, {}).get(target.metric) if target.baseline else None
        cells = [target.label, f"{target.baseline} {fmt(base)}" if target.baseline else "–"]
        verdicts: List[Tuple[str, str]] = []
        for name in ftpds:
            applies = not target.fork_only or name.endswith("-fork")
            value = result.get(name, {}).get(target.metric) if applies else None
            judged = ratio(value, base) if target.baseline else value
            cells += [fmt(value), fmt(judged, as_ratio=True) if target.baseline else "–"]
            if judged is not None and target.limit is not None:
                verdicts.append(("met" if judged <= target.limit else "not met", name[5:]))
        cells += [_limit_text(target), _verdict_text(verdicts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _limit_text(target: Target) -> str:
    if target.limit is None:
        return ""
    return f"≤ {target.limit:g}{target.unit}"


def _verdict_text(verdicts: List[Tuple[str, str]]) -> str:
    if len({word for word, _ in verdicts}) == 1:
        return verdicts[0][0]
    return ", ".join(f"{word} ({mode})" for word, mode in verdicts)
