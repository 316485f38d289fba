"""One measurement of one metric against one contestant. Each function
returns {metric: value}; a failed run raises MeasureError."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import psutil

from ftpd.server.digests import ATTRIBUTE
from bench.servers import PROJECT, Contestant, Workspace, free_port, wait_for

MiB = 1 << 20


class MeasureError(Exception):
    pass


def run_json(argv: List[str], limit: float) -> dict:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise MeasureError(f"{argv[1]} took more than {limit:g}s") from exc
    try:
        result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise MeasureError(f"{argv[:2]} failed: {done.stderr.strip()[-300:]}") from exc
    if result.get("errors"):
        raise MeasureError(f"{argv[1]} against port {argv[4]}: {result}")
    return result


def compile_client(out_dir: Path) -> Path:
    """benchc, built now with the system C compiler (cc)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise MeasureError("no C compiler (cc): apt-get install gcc")
    binary = out_dir / "benchc"
    source = Path(__file__).with_name("benchc.c")
    subprocess.run([compiler, "-O2", "-pthread", "-o", str(binary), str(source)],
                   check=True, timeout=120)
    return binary


class Meter:
    """The measurements, with the sizes of this run."""

    def __init__(self, benchc: Path, workspace: Workspace, sizes: Dict[str, int]):
        self.benchc = str(benchc)
        self.ws = workspace
        self.sizes = sizes
        self.limit = sizes["time_limit"]

    def methods(self, families: Tuple[str, ...]) -> Dict[str, Callable[[Contestant],
                                                                       Dict[str, float]]]:
        return {family: getattr(self, family) for family in families}

    def _c(self, mode: str, who: Contestant, *args: object) -> dict:
        argv = [self.benchc, mode, who.proto, "127.0.0.1", str(who.port)]
        return run_json(argv + [str(a) for a in args], self.limit)

    def get(self, who: Contestant) -> Dict[str, float]:
        result = self._c("get", who, self.ws.big.name)
        if result["bytes"] != self.ws.big_size:
            raise MeasureError(f"get returned {result['bytes']} bytes")
        return {"get_s": result["seconds"]}

    def put(self, who: Contestant) -> Dict[str, float]:
        who.clear_uploads()
        sha = [self.ws.big_sha] if who.proto == "ftpd" else []
        result = self._c("put", who, who.upload_path, self.ws.big, *sha)
        stored = (who.upload_dir / "up.bin").stat().st_size
        who.clear_uploads()
        if stored != self.ws.big_size:
            raise MeasureError(f"put stored {stored} bytes")
        return {"put_s": result["seconds"]}

    def sessions(self, who: Contestant) -> Dict[str, float]:
        result = self._c("sessions", who, self.ws.small.name, self.sizes["sessions"],
                         self.sizes["inflight"])
        return {"sessions_s": result["seconds"]}

    def burst(self, who: Contestant) -> Dict[str, float]:
        argv = [self.benchc, "burst", who.proto, "127.0.0.1", str(who.port),
                str(self.sizes["burst"]), str(self.sizes["burst_timeout"])]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=self.limit)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        settle(who, self.limit)
        return {"burst_s": result["seconds"], "burst_served": result["served"],
                "burst_errors": result["connects"] - result["served"]}

    def latency(self, who: Contestant) -> Dict[str, float]:
        result = self._c("latency", who, self.sizes["latency"])
        return {"greet_p50_ms": result["p50_ms"], "greet_p99_ms": result["p99_ms"]}

    def idle_uss(self, who: Contestant) -> Dict[str, float]:
        """Memory of `idle` greeted sessions. USS: what ending them would free
        (new processes' USS, plus growth of the old ones, e.g. a thread
        server). PSS: the growth of the physical memory of the whole tree."""
        settle(who, self.limit)
        before = memory(who)
        count = self.sizes["idle"]
        socks = []
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", who.port), timeout=30)
                socks.append(sock)
                if not read_line(sock).startswith((b"OK", b"220")):
                    raise MeasureError(f"{who.name} did not greet idle session {len(socks)}")
            after = memory(who)
        finally:
            for sock in socks:
                sock.close()
        settle(who, self.limit)
        uss = sum(max(0, now[0] - before.get(pid, (0, 0))[0]) for pid, now in after.items())
        pss = sum(a[1] for a in after.values()) - sum(b[1] for b in before.values())
        return {"idle_uss_mib": uss / count / MiB, "idle_pss_mib": pss / count / MiB}

    def put_parallel(self, who: Contestant) -> Dict[str, float]:
        """`parallel` uploads at once: ftpd's SHA-256 makes them CPU-bound."""
        who.clear_uploads()
        sha = [self.ws.medium_sha] if who.proto == "ftpd" else []
        started = time.monotonic()
        procs = [subprocess.Popen(
            [self.benchc, "put", who.proto, "127.0.0.1", str(who.port),
             who.upload_path_for(str(n)), str(self.ws.medium)] + sha,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(self.sizes["parallel"])]
        try:
            outputs = [proc.communicate(timeout=self.limit)[0] for proc in procs]
        except subprocess.TimeoutExpired as exc:
            raise MeasureError(f"parallel uploads took more than {self.limit:g}s") from exc
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
        elapsed = time.monotonic() - started
        who.clear_uploads()
        if any(json.loads(out.strip().splitlines()[-1])["errors"] for out in outputs):
            raise MeasureError(f"a parallel upload failed: {outputs}")
        return {"put_parallel_s": elapsed}

    def crash(self, who: Contestant) -> Dict[str, float]:
        """Crash the process serving one of `crash` idle sessions (SIGSEGV, as
        a fault in native code would): how many of the others still answer?"""
        settle(who, self.limit)
        socks = [greeted(who.port) for _ in range(self.sizes["crash"])]
        try:
            victim = psutil.Process(serving_process(who, socks[0]))
            victim.send_signal(signal.SIGSEGV)
            try:
                victim.wait(10)     # a zombie counts as dead
            except psutil.TimeoutExpired:
                pass
            alive = sum(answers(who.proto, sock) for sock in socks[1:])
        finally:
            for sock in socks:
                sock.close()
        who.restart_if_dead()
        return {"crash_survivors": alive / (len(socks) - 1)}

    def user_get(self, who: Contestant) -> Dict[str, float]:
        """What a user sees: curl for vsftpd, ftpc (verifying, as by default) for ftpd."""
        if who.proto == "ftp":
            url = f"ftp://127.0.0.1:{who.port}/{self.ws.big.name}"
            return {"user_get_s": _curl(["-o", "/dev/null", url], self.limit)}
        return {"user_get_s": self._ftpc(who, ["get", self.ws.big.name, "-o", "-"])}

    def user_put(self, who: Contestant) -> Dict[str, float]:
        who.clear_uploads()
        try:
            if who.proto == "ftp":
                url = f"ftp://127.0.0.1:{who.port}/{who.upload_path}"
                return {"user_put_s": _curl(["-T", str(self.ws.big), url], self.limit)}
            return {"user_put_s": self._ftpc(who, ["put", str(self.ws.big),
                                                   "--as", who.upload_path])}
        finally:
            who.clear_uploads()

    def digest(self, who: Contestant) -> Dict[str, float]:
        """`H` of the big file stored by `P`, answered from the digest kept
        with the file; then once with that record removed (hashed again)."""
        who.clear_uploads()
        self._c("put", who, who.upload_path, self.ws.big, self.ws.big_sha)
        stored = who.upload_dir / who.upload_path
        try:
            with greeted(who.port) as sock:
                sock.settimeout(self.limit)
                kept = [self._timed_hash(sock, who.upload_path)
                        for _ in range(self.sizes["digest_rounds"])]
                try:
                    os.removexattr(stored, ATTRIBUTE)
                except OSError as exc:
                    raise MeasureError(f"no {ATTRIBUTE} on the stored file ({exc.strerror}): "
                                       f"H took {statistics.median(kept) * 1000:.1f} ms") from exc
                hashed = self._timed_hash(sock, who.upload_path)
        finally:
            who.clear_uploads()
        return {"h_kept_ms": statistics.median(kept) * 1000, "h_kept_max_ms": max(kept) * 1000,
                "h_hashed_ms": hashed * 1000}

    def _timed_hash(self, sock: socket.socket, name: str) -> float:
        started = time.perf_counter()
        sock.sendall(f"H {name}\n".encode())
        reply = read_line(sock)
        seconds = time.perf_counter() - started
        if reply.split() != [b"OK", str(self.ws.big_size).encode(), self.ws.big_sha.encode()]:
            raise MeasureError(f"H {name} answered {reply[:200]!r}")
        return seconds

    def _ftpc(self, who: Contestant, command: List[str]) -> float:
        """ftpc run as a user runs it, timed from start to exit like curl."""
        argv = [sys.executable, "-m", "ftpd.ftpc", "-q", f"127.0.0.1:{who.port}"] + command
        env = dict(os.environ, PYTHONPATH=str(PROJECT))
        started = time.monotonic()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=self.limit, env=env)
        if done.returncode != 0:
            raise MeasureError(f"ftpc {command[0]} failed: {done.stderr.strip()}")
        return time.monotonic() - started


def _curl(args: List[str], limit: float) -> float:
    argv = ["curl", "-s", "-S", "--max-time", str(int(limit))] + args
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit + 5)
    if done.returncode != 0:
        raise MeasureError(f"curl failed: {done.stderr.strip()}")
    return time.monotonic() - started


def greeted(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if not read_line(sock).startswith((b"OK", b"220")):
        sock.close()
        raise MeasureError(f"no greeting on port {port}")
    return sock


def serving_process(who: Contestant, sock: socket.socket) -> int:
    """The pid holding the server's end of `sock` (the server's own in thread mode)."""
    port = sock.getsockname()[1]
    for proc in reversed(sessions_of(psutil.Process(who.pid))):
        try:
            if any(c.raddr and c.raddr[1] == port for c in proc.net_connections("tcp")):
                return proc.pid
        except psutil.NoSuchProcess:
            pass
    return who.pid


def answers(proto: str, sock: socket.socket) -> bool:
    try:
        sock.settimeout(5)
        sock.sendall(b"NOOP\r\n" if proto == "ftp" else b"L\n")
        return read_line(sock).endswith(b"\n")   # any reply: vsftpd says 530 before login
    except OSError:
        return False


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def memory(who: Contestant) -> Dict[int, Tuple[int, int]]:
    """pid -> (USS, PSS) for the server and every process below it."""
    found = {}
    top = psutil.Process(who.pid)
    for proc in [top] + sessions_of(top):
        try:
            info = proc.memory_full_info()
            found[proc.pid] = (info.uss, info.pss)
        except psutil.NoSuchProcess:
            pass
    return found


def settle(who: Contestant, limit: float) -> None:
    """Wait until the sessions of the last run are gone (children or threads)."""
    top = psutil.Process(who.pid)
    wait_for(lambda: not sessions_of(top)
             and (top.num_threads() == 1 or not who.name.endswith("thread")),
             limit, f"{who.name} to finish its sessions")


def sessions_of(top: psutil.Process) -> List[psutil.Process]:
    try:
        return top.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def loopback_ceiling(seconds: int = 3, limit: float = 30) -> Dict[str, float]:
    """iperf3 over loopback, when installed: the fastest any server could go."""
    if shutil.which("iperf3") is None:
        return {}
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        client = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
        done = subprocess.run(client, capture_output=True, text=True, timeout=limit)
        bps = json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]
        return {"loopback_gbit_s": bps / 1e9}
    except (subprocess.TimeoutExpired, KeyError, ValueError):
        return {}
    finally:
        server.kill()
        server.wait(5)
