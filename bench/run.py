"""ftpd against vsftpd, side by side on loopback, libraries on tmpfs.

    python3 bench/run.py            # the full run (about 5 minutes; root installs vsftpd)
    python3 bench/run.py --quick    # small sizes, a smoke test in seconds

Every metric is measured `--repeats` times with the contestants' order
reversed on every other round (alternating pairs), so slow drift of a
shared machine hits each side alike; the table shows medians and the
ratio ftpd/vsftpd (lower is better, except for the crash row).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):      # run as a script: make `bench` and `ftpd` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import MeasureError, Meter, compile_client, loopback_ceiling  # noqa: E402
from bench.servers import (BenchError, Contestant, Floor, Ftpd, Vsftpd,  # noqa: E402
                           Workspace, ensure_vsftpd)

GiB, MiB = 1 << 30, 1 << 20
FULL = dict(big=GiB, small=MiB, medium=256 * MiB, parallel=4, sessions=300, inflight=32,
            burst=1000, burst_timeout=20, idle=300, latency=500, crash=20, repeats=5,
            time_limit=180)
QUICK = dict(big=32 * MiB, small=256 << 10, medium=8 * MiB, parallel=4, sessions=40,
             inflight=8, burst=60, burst_timeout=10, idle=20, latency=60, crash=5, repeats=1,
             time_limit=30)
FAMILIES = ("get", "put", "sessions", "burst", "latency", "idle_uss", "user_get", "user_put",
            "put_parallel", "crash")

Samples = Dict[str, Dict[str, List[float]]]


def rows(sizes: dict) -> List[tuple]:
    """(metric, label, target ratio or None) in table order."""
    big = f"{sizes['big'] / GiB:g} GiB" if sizes["big"] >= GiB else f"{sizes['big'] // MiB} MiB"
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


def alternating(contestants: Sequence[Contestant], round_no: int) -> List[Contestant]:
    return list(contestants) if round_no % 2 == 0 else list(reversed(contestants))


def measure_all(meter: Meter, contestants: Sequence[Contestant], families: Sequence[str],
                repeats: int, errors: List[str]) -> Samples:
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for family in families:
        for round_no in range(repeats):
            for who in alternating(contestants, round_no):
                if who.families is not None and family not in who.families:
                    continue
                try:
                    result = getattr(meter, family)(who)
                except (MeasureError, BenchError) as exc:
                    errors.append(f"{family} {who.name}: {exc}")
                    continue
                for metric, value in result.items():
                    samples[who.name][metric].append(value)
        print(f"  measured {family}", file=sys.stderr, flush=True)
    return samples


def medians(samples: Samples) -> Dict[str, Dict[str, float]]:
    return {name: {metric: statistics.median(values) for metric, values in found.items()}
            for name, found in samples.items()}


def ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    if value is None or base is None:
        return None
    if base == 0:
        return 1.0 if value == 0 else None
    return value / base


def table(result: Dict[str, Dict[str, float]], names: Sequence[str], sizes: dict) -> str:
    ftpds = [n for n in names if n != "vsftpd"]
    head = ["metric", "vsftpd"] + [c for n in ftpds for c in (n, f"{n}/vsftpd")] + ["target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric, label, target in rows(sizes):
        base = result.get("vsftpd", {}).get(metric)
        cells = [label, _fmt(base)]
        for name in ftpds:
            value = result.get(name, {}).get(metric)
            cells += [_fmt(value), _fmt(ratio(value, base), ratio=True)]
        cells.append(f"≤ {target}" if target else _target_note(metric))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _target_note(metric: str) -> str:
    return {"burst_errors": "0", "idle_uss_mib": "≤ 1 MiB (fork)"}.get(metric, "")


def _fmt(value: Optional[float], ratio: bool = False) -> str:
    if value is None:
        return "–"
    if ratio:
        return f"**{value:.2f}**"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"Python {platform.python_version()}, vsftpd {_vsftpd_version()}")


def _vsftpd_version() -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "vsftpd"],
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, help="rounds per metric (default 5, quick 1)")
    parser.add_argument("--modes", default="fork,thread", help="ftpd concurrency modes")
    parser.add_argument("--no-vsftpd", action="store_true", help="ftpd only (no ratios)")
    parser.add_argument("--no-floor", action="store_true",
                        help="leave out the CPython floor (bench/floor.py)")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(FAMILIES))
    parser.add_argument("--json", metavar="FILE", help="also write raw samples as JSON")
    return parser.parse_args(argv)


def start_all(args: argparse.Namespace, ws: Workspace) -> List[Contestant]:
    contestants: List[Contestant] = []
    if not args.no_vsftpd:
        contestants.append(Vsftpd(ws, ensure_vsftpd()))
    contestants += [Ftpd(ws, mode) for mode in args.modes.split(",") if mode]
    if not args.no_floor:
        contestants.append(Floor(ws))
    for who in contestants:
        who.start()
    return contestants


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    repeats = args.repeats or sizes["repeats"]
    families = args.only.split(",") if args.only else FAMILIES
    ws = Workspace(sizes["big"], sizes["small"], sizes["medium"])
    contestants: List[Contestant] = []
    errors: List[str] = []
    try:
        with tempfile.TemporaryDirectory() as build:
            meter = Meter(compile_client(Path(build)), ws, sizes)
            contestants = start_all(args, ws)
            samples = measure_all(meter, contestants, families, repeats, errors)
    except (BenchError, MeasureError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        for who in contestants:
            who.stop()
        ws.remove()
    return report(samples, [c.name for c in contestants], sizes, repeats, errors, args)


def report(samples: Samples, names: List[str], sizes: dict, repeats: int,
           errors: List[str], args: argparse.Namespace) -> int:
    result = medians(samples)
    ceiling = loopback_ceiling(1 if args.quick else 3)
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"ftpd bench, {stamp}, {machine()}")
    print(f"medians of {repeats} alternating round(s); libraries on tmpfs; loopback")
    if ceiling:
        print(f"loopback ceiling (iperf3, 1 stream): {ceiling['loopback_gbit_s']:.1f} Gbit/s")
    print()
    print(table(result, names, sizes))
    for line in errors:
        print(f"error: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"date": stamp, "machine": machine(), "sizes": sizes, "repeats": repeats,
             "ceiling": ceiling, "samples": samples, "medians": result, "errors": errors},
            indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
