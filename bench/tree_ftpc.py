"""ftpc put -r / get -r of a tree against rsync -a to an rsync daemon
(rsync://) on the same machine, both over loopback (docs/benchmark.md, "Trees").

    python3 -m bench.tree_ftpc [--files 10000] [--size 4096] [--big-mib 0]

Each row is the median of --repeat runs into an empty destination, then
one run again over the complete copy (everything identical: ftpc compares
SHA-256 by pipelined H, rsync its size and time). Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

from bench.tree import PROJECT, start_daemon


def make_tree(top: Path, files: int, size: int, big_mib: int) -> None:
    for i in range(files):
        folder = top / f"d{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.dat").write_bytes(os.urandom(size))
    if big_mib:
        with open(top / "big.bin", "wb") as out:
            for _ in range(big_mib):
                out.write(os.urandom(1 << 20))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_rsyncd(work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (work / "rsync-dest").mkdir()
    conf = work / "rsyncd.conf"
    conf.write_text(f"use chroot = no\n[bench]\npath = {work / 'rsync-dest'}\n"
                    "read only = no\nuid = root\ngid = root\n")
    proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--port={port}",
                             f"--config={conf}", "--address=127.0.0.1"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("rsync --daemon did not start")


def timed(command: List[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def row(label: str, runs: List[float], again: float, total: int) -> None:
    median = statistics.median(runs)
    print(f"{label:<28} {median:8.2f} s  {total / median / (1 << 20):8.1f} MiB/s   "
          f"again (all identical) {again:6.2f} s", flush=True)


def bench(name: str, fresh: Callable[[], None], command: List[str], cwd: Path,
          repeat: int, total: int) -> float:
    runs = []
    for _ in range(repeat):
        fresh()
        runs.append(timed(command, cwd))
    again = timed(command, cwd)
    row(name, runs, again, total)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--big-mib", type=int, default=0, help="add one file of this size")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is not installed (apt-get install -y rsync)")
    with tempfile.TemporaryDirectory(prefix="bench-tree-ftpc-") as temp:
        work = Path(temp)
        make_tree(work / "src", args.files, args.size, args.big_mib)
        total = args.files * args.size + (args.big_mib << 20)
        daemon, port = start_daemon(work)
        rsyncd, rport = start_rsyncd(work)
        ftpc = [sys.executable, "-m", "ftpd.ftpc", "-q", f"127.0.0.1:{port}"]
        library, rdest = work / "library", work / "rsync-dest"
        try:
            print(f"{args.files} files of {args.size} B"
                  + (f" + one of {args.big_mib} MiB" if args.big_mib else ""), flush=True)
            put = bench("ftpc put -r", lambda: _empty(library / "src"),
                        ftpc + ["put", "-r", "src"], work, args.repeat, total)
            rput = bench("rsync -a (to rsync://)", lambda: _empty(rdest / "src"),
                         ["rsync", "-a", "src", f"rsync://127.0.0.1:{rport}/bench/"], work,
                         args.repeat, total)
            get = bench("ftpc get -r", lambda: _empty(work / "back"),
                        ftpc + ["get", "-r", "src", "-o", "back"], work, args.repeat, total)
            rget = bench("rsync -a (from rsync://)", lambda: _empty(work / "rback"),
                         ["rsync", "-a", f"rsync://127.0.0.1:{rport}/bench/src/", "rback"],
                         work, args.repeat, total)
            print(f"ratio ftpc/rsync: put {put / rput:.1f}x, get {get / rget:.1f}x")
        finally:
            for proc in (daemon, rsyncd):
                proc.terminate()
                proc.wait(timeout=30)


def _empty(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(PROJECT)
    main()
