"""Figures for the tree (docs/tree.md): listing a directory of 100,000
entries through the real daemon, and the start-up sweep of stale upload
temporaries over a library of 100,000 files.

    python3 -m bench.tree [--files 100000] [--repeat 5]

The library lives in a temporary directory on the file system of $TMPDIR.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import psutil

from ftpd.server.library import Library
from ftpd.server.temps import temp_name

PROJECT = Path(__file__).resolve().parent.parent
DEAD_NODE = 2 ** 22 + 4242          # above pid_max: never a live node


def make_files(directory: Path, count: int, prefix: str = "file") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        os.close(os.open(directory / f"{prefix}-{i:06d}.dat", os.O_CREAT | os.O_WRONLY, 0o644))


def start_daemon(work: Path) -> Tuple[subprocess.Popen, int]:
    conf = work / "ftpd.conf"
    (work / "library").mkdir(exist_ok=True)      # ftpd creates only its built-in default
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\nroot = {work / 'library'}\n"
                    f"[files]\nmax_entries_per_listing = 1000000\n")
    log = open(work / "ftpd.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(PROJECT), FTPD_ALLOW_PORT_0="1")   # listen on :0
    proc = subprocess.Popen([sys.executable, "-m", "ftpd", "-c", str(conf)], stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60          # includes the start-up sweep
    while time.monotonic() < deadline:
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", (work / "ftpd.log").read_text())
        if found and "ftpd serving" in (work / "ftpd.log").read_text():
            return proc, int(found.group(1))
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("ftpd did not start")


def time_listing(port: int, path: bytes) -> Tuple[float, int]:
    """Seconds from sending `L path` to the last row's LF; the row count."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        started = time.perf_counter()
        sock.sendall(b"L " + path + b"\n")
        count = int(reader.readline().split()[1])
        for _ in range(count):
            reader.readline()
        return time.perf_counter() - started, count


def session_peak_kib(daemon: psutil.Process) -> List[int]:
    """VmHWM of each forked session (its peak resident memory)."""
    peaks = []
    for child in daemon.children():
        for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return peaks


def cpu_seconds(daemon: psutil.Process) -> Dict[int, float]:
    """user + system CPU seconds of each session process."""
    spent = {}
    for child in daemon.children():
        times = child.cpu_times()
        spent[child.pid] = times.user + times.system
    return spent


def bench_listing(work: Path, files: int, repeat: int) -> None:
    make_files(work / "library" / "big", files)
    proc, port = start_daemon(work)
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        idle.recv(100)
        baseline = session_peak_kib(psutil.Process(proc.pid))
        idle.close()
        samples = [time_listing(port, b"big") for _ in range(repeat)]
        with socket.create_connection(("127.0.0.1", port)) as held:
            held.recv(100)
            before = cpu_seconds(psutil.Process(proc.pid))
            started = time.perf_counter()
            held.sendall(b"L big\n")
            reader = held.makefile("rb")
            for _ in range(int(reader.readline().split()[1])):
                reader.readline()
            wall = time.perf_counter() - started
            after = cpu_seconds(psutil.Process(proc.pid))
            peaks = session_peak_kib(psutil.Process(proc.pid))
            spent = max(after[pid] - before.get(pid, 0.0) for pid in after)
    finally:
        proc.terminate()
        proc.wait(30)
    seconds = [s for s, _ in samples]
    print(f"L of {samples[0][1]} entries: median {statistics.median(seconds):.3f} s, "
          f"min {min(seconds):.3f} s, max {max(seconds):.3f} s ({repeat} runs, fork mode)")
    print(f"  one more listing: {wall:.3f} s, of which the session's CPU time {spent:.3f} s")
    print(f"  session peak RSS: idle {max(baseline)} KiB, after the listing {max(peaks)} KiB")


def timed(action: Callable[[], object]) -> Tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def bench_sweep(work: Path, files: int, repeat: int) -> None:
    per_dir = 100
    spread, flat = work / "sweep-tree", work / "sweep-flat"
    for d in range(files // per_dir):          # 30 directories of 30-odd directories each
        make_files(spread / f"d{d // 30:03d}" / f"e{d:04d}", per_dir)
    make_files(flat, files)
    for shape, root, where in ((f"{files // per_dir} directories of {per_dir}", spread,
                                spread / "d000" / "e0000"),
                               ("one directory", flat, flat)):
        results = []
        for _ in range(repeat):
            for i in range(10):
                (where / temp_name(DEAD_NODE, i)).write_bytes(b"partial")
            library = Library(str(root))
            seconds, removed = timed(library.cleanup_temps)
            library.close()
            assert len(removed) == 10, removed
            results.append(seconds)
        print(f"start-up sweep of {files} files in {shape}: median "
              f"{statistics.median(results):.3f} s, max {max(results):.3f} s ({repeat} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftpd-tree-bench-") as tmp:
        work = Path(tmp)
        fs = subprocess.run(["stat", "-f", "-c", "%T", tmp], capture_output=True,
                            text=True).stdout.strip()
        print(f"library on {fs} ({tmp}), {os.cpu_count()} CPUs")
        bench_listing(work, args.files, args.repeat)
        bench_sweep(work, args.files, args.repeat)


if __name__ == "__main__":
    main()
