"""`H` of a large file stored by `P`: answered from the digest kept with
the file (user.ftpd.sha256), against hashing it again.

Starts ftpd from this checkout on a loopback port with a library in a fresh
temporary directory, uploads SIZE bytes with `P`, then times `H` over the
wire: ROUNDS times with the record in place, then once with the record
removed (the server reads and hashes the whole file).

    python bench/digest_cache.py [--size-mib 1024] [--rounds 21] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ftpd.client import Client  # noqa: E402
from ftpd.server import digests  # noqa: E402

MiB = 1 << 20
START_LIMIT = 15.0


def start_ftpd(work: Path) -> tuple:
    conf = work / "ftpd.conf"
    (work / "library").mkdir(exist_ok=True)      # ftpd creates only its built-in default
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\nroot = {work / 'library'}\n")
    log = work / "ftpd.log"
    env = dict(os.environ, PYTHONPATH=str(PROJECT), FTPD_ALLOW_PORT_0="1")   # listen on :0
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ftpd", "-c", str(conf)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if found and "ftpd serving" in log.read_text():
            return proc, int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"ftpd did not start:\n{log.read_text()}")


def timed_hash(client: Client, name: str) -> float:
    started = time.perf_counter()
    client.hash(name)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--dir", default=None, help="where the library goes (a disk, not tmpfs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftpd-digest-", dir=args.dir))
    proc = None
    try:
        source = work / "big.bin"
        block = os.urandom(MiB)
        with open(source, "wb") as out:
            for _ in range(args.size_mib):
                out.write(block)
        proc, port = start_ftpd(work)
        with Client("127.0.0.1", port, timeout=120) as client:
            client.put(str(source), "big.bin")
            stored = work / "library" / "big.bin"
            cached = [timed_hash(client, "big.bin") for _ in range(args.rounds)]
            os.removexattr(stored, digests.ATTRIBUTE)
            uncached = timed_hash(client, "big.bin")
        print(json.dumps({
            "file_mib": args.size_mib, "rounds": args.rounds,
            "h_cached_median_ms": round(statistics.median(cached) * 1000, 3),
            "h_cached_max_ms": round(max(cached) * 1000, 3),
            "h_uncached_ms": round(uncached * 1000, 1),
            "filesystem_dir": str(work),
        }, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
