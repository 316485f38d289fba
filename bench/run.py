"""ftpd against vsftpd and rsync, side by side on loopback, libraries on tmpfs.

    python3 bench/run.py            # the full run (about 12 minutes; root installs
                                    # vsftpd and rsync)
    python3 bench/run.py --quick    # small sizes, a smoke test

Every metric is measured `--repeats` times with the contestants' order
reversed on every other round (alternating pairs), so slow drift of a
shared machine hits each side alike; the first table shows medians and the
ratio ftpd/vsftpd (lower is better, except for the crash row), the second
issue 14's targets, each over its baseline from the same run.
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
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

if __package__ in (None, ""):      # run as a script: make `bench` and `ftpd` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import MeasureError, Meter, compile_client, loopback_ceiling  # noqa: E402
from bench.mirror import TREE_FAMILIES, Rsyncd, TreeMeter, ensure_rsync  # noqa: E402
from bench.servers import (BenchError, Contestant, Floor, Ftpd, Vsftpd,  # noqa: E402
                           Workspace, ensure_vsftpd)
from bench.tables import GiB, MiB, table, targets_table  # noqa: E402

FULL = dict(big=GiB, small=MiB, medium=256 * MiB, parallel=4, sessions=300, inflight=32,
            burst=1000, burst_timeout=20, idle=300, latency=500, crash=20, repeats=5,
            time_limit=180, digest_rounds=21, tree_files=10_000, tree_file_size=4096,
            bigtree_files=100)
QUICK = dict(big=32 * MiB, small=256 << 10, medium=8 * MiB, parallel=4, sessions=40,
             inflight=8, burst=60, burst_timeout=10, idle=20, latency=60, crash=5, repeats=1,
             time_limit=30, digest_rounds=5, tree_files=200, tree_file_size=4096,
             bigtree_files=20)
SERVER_FAMILIES = ("get", "put", "sessions", "burst", "latency", "idle_uss", "user_get",
                   "user_put", "put_parallel", "crash")
FAMILIES = SERVER_FAMILIES + ("digest",) + TREE_FAMILIES

Samples = Dict[str, Dict[str, List[float]]]
Method = Callable[[Contestant], Dict[str, float]]


def alternating(contestants: Sequence[Contestant], round_no: int) -> List[Contestant]:
    return list(contestants) if round_no % 2 == 0 else list(reversed(contestants))


def measure_all(methods: Dict[str, Method], contestants: Sequence[Contestant],
                families: Sequence[str], repeats: int, errors: List[str]) -> Samples:
    samples: Samples = defaultdict(lambda: defaultdict(list))
    for family in families:
        started = time.monotonic()
        for round_no in range(repeats):
            for who in alternating(contestants, round_no):
                if who.families is not None and family not in who.families:
                    continue
                try:
                    result = methods[family](who)
                except (MeasureError, BenchError) as exc:
                    errors.append(f"{family} {who.name}: {exc}")
                    continue
                for metric, value in result.items():
                    samples[who.name][metric].append(value)
        print(f"  measured {family} ({time.monotonic() - started:.0f} s)", file=sys.stderr,
              flush=True)
    return samples


def medians(samples: Samples) -> Dict[str, Dict[str, float]]:
    return {name: {metric: statistics.median(values) for metric, values in found.items()}
            for name, found in samples.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"Python {platform.python_version()}, vsftpd {_version('vsftpd')}, "
            f"rsync {_version('rsync')}")


def _version(package: str) -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
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


def start_all(args: argparse.Namespace, ws: Workspace,
              families: Sequence[str]) -> List[Contestant]:
    """The servers this run needs, started. The tree families run against
    the first ftpd mode only: a tree moves in one session, so the
    concurrency model hardly matters, and they are the longest families."""
    contestants: List[Contestant] = []
    if not args.no_vsftpd and set(families) & set(SERVER_FAMILIES):
        vsftpd = Vsftpd(ws, ensure_vsftpd())
        vsftpd.families = frozenset(SERVER_FAMILIES)
        contestants.append(vsftpd)
    ftpds = [Ftpd(ws, mode) for mode in args.modes.split(",") if mode]
    for later in ftpds[1:]:
        later.families = frozenset(FAMILIES) - frozenset(TREE_FAMILIES)
    contestants += ftpds
    if not args.no_floor and set(families) & Floor.families:
        contestants.append(Floor(ws))
    if set(families) & set(TREE_FAMILIES):
        contestants.append(Rsyncd(ws, ensure_rsync()))
    for who in contestants:
        who.start()
    return contestants


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    repeats = args.repeats or sizes["repeats"]
    families = args.only.split(",") if args.only else FAMILIES
    unknown = set(families) - set(FAMILIES)
    if unknown:
        print(f"bench: unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}",
              file=sys.stderr)
        return 2
    ws = Workspace(sizes["big"], sizes["small"], sizes["medium"])
    contestants: List[Contestant] = []
    errors: List[str] = []
    try:
        with tempfile.TemporaryDirectory() as build:
            meter = Meter(compile_client(Path(build)), ws, sizes)
            methods = {**meter.methods(SERVER_FAMILIES + ("digest",)),
                       **TreeMeter(ws, sizes).methods()}
            contestants = start_all(args, ws, families)
            samples = measure_all(methods, contestants, families, repeats, errors)
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
    side_by_side = table(result, names, sizes)
    if side_by_side.count("\n") > 2:       # more than its head: a server family ran
        print(side_by_side)
    print(targets_table(result, names, sizes))
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
