"""Host-side helpers for the deployment test: config edits, raw FTPD/1, files."""

from __future__ import annotations

import configparser
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

from tests.harness import wait_until
from tests.system.deploy.image import PROJECT
from tests.system.deploy.vm import Guest

CONF = "/etc/ftpd/ftpd.conf"
# This checkout's etc/ftpd.conf on the payload disk: what the package installs.
SHIPPED_CONF = "/mnt/payload/src/etc/ftpd.conf"


def guide_config() -> configparser.ConfigParser:
    """etc/ftpd.conf from this checkout: what install.sh puts in place."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PROJECT / "etc" / "ftpd.conf")
    return parser


def set_option(text: str, section: str, key: str, value: Optional[str]) -> str:
    """Edit one key of an INI text the way an admin would: comments stay.

    The key's line is replaced (or dropped when value is None, back to its
    default); a new key goes right under its section header."""
    lines, current, header = text.splitlines(), None, None
    out: List[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip()
        elif current == section and "=" in stripped and not stripped.startswith(("#", ";")) \
                and stripped.split("=", 1)[0].strip() == key:
            continue
        out.append(line)
        if current == section and header is None:
            header = len(out)
    if value is not None:
        if header is None:
            out += ["", f"[{section}]"]
            header = len(out)
        out.insert(header, f"{key} = {value}")
    return "\n".join(out) + "\n"


def configure(guest: Guest, section: str, key: str, value: Optional[str]) -> None:
    """Edit /etc/ftpd/ftpd.conf in the guest and `systemctl reload ftpd`."""
    text = guest.run(f"cat {CONF}").out
    guest.write(CONF, set_option(text, section, key, value), mode=0o640)
    guest.run("systemctl reload ftpd", timeout=60)


def restore_shipped_config(guest: Guest) -> None:
    """Put the shipped /etc/ftpd/ftpd.conf back, whatever a test edited, and
    wait until a running daemon has applied it (a reload is a signal: it
    lands after `systemctl reload` returns)."""
    if guest.run(f"cmp -s {SHIPPED_CONF} {CONF}", check=False).rc == 0:
        return
    since = guest_clock(guest)
    guest.run(f"cp {SHIPPED_CONF} {CONF}")        # cp keeps the installed file's owner and mode
    if guest.run("systemctl is-active ftpd.service", check=False).out.strip() != "active":
        return                                    # it reads the file when it starts
    guest.run("systemctl reload ftpd", timeout=60)
    wait_until(lambda: "configuration reloaded" in journal(guest, since), 60, 0.5,
               "the shipped config reloaded")


def journal(guest: Guest, since: Optional[str] = None, unit: str = "ftpd.service") -> str:
    window = f" --since @{since}" if since else ""
    return guest.run(f"journalctl -u {unit} --no-pager -o cat{window}", timeout=60).out


def guest_clock(guest: Guest) -> str:
    return guest.run("date +%s.%N").out.strip()


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes; return their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class RawSession:
    """FTPD/1 over a bare socket: the bytes exactly as the protocol text has them."""

    def __init__(self, port: int, timeout: float = 60.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def line(self) -> str:
        raw = self.file.readline(8192)
        assert raw.endswith(b"\n"), f"reply not ended by LF: {raw!r}"
        return raw[:-1].decode("utf-8")

    def ask(self, request: str) -> str:
        self.sock.sendall(request.encode("utf-8") + b"\n")
        return self.line()

    def read_exact(self, count: int) -> bytes:
        data = self.file.read(count)
        assert len(data) == count, f"got {len(data)} of {count} bytes"
        return data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class SlowSink:
    """A download target that reads at `rate` bytes/s: keeps a transfer running."""

    def __init__(self, rate: float):
        self.rate = rate
        self.digest = hashlib.sha256()
        self.received = 0
        self.started = threading.Event()

    def write(self, chunk: bytes) -> int:
        self.digest.update(chunk)
        self.received += len(chunk)
        self.started.set()
        time.sleep(len(chunk) / self.rate)
        return len(chunk)


class GatedSink(SlowSink):
    """Reads slowly until `release` is set, then as fast as data comes: the
    transfer is surely still running when the event the test waits for comes."""

    def __init__(self, rate: float):
        super().__init__(rate)
        self.release = threading.Event()

    def write(self, chunk: bytes) -> int:
        if self.release.is_set():
            self.digest.update(chunk)
            self.received += len(chunk)
            return len(chunk)
        return super().write(chunk)


def start_in_background(guest: Guest, cmd: str, name: str) -> None:
    """Run `cmd` in the guest detached from the agent, which stays free for
    other requests; its output and exit status land in /tmp/<name>.out, .rc."""
    guest.run(f"rm -f /tmp/{name}.rc; setsid sh -c '({cmd}) >/tmp/{name}.out 2>&1; "
              f"echo $? >/tmp/{name}.rc' </dev/null >/dev/null 2>&1 &")


def wait_background(guest: Guest, name: str, timeout: float) -> Tuple[int, str]:
    """(exit status, output) of a command started by start_in_background."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = guest.run(f"cat /tmp/{name}.rc", check=False)
        if done.rc == 0 and done.out.strip():
            return int(done.out), guest.run(f"cat /tmp/{name}.out").out
        time.sleep(1.0)
    raise TimeoutError(f"{name} still running after {timeout}s: "
                       f"{guest.run(f'tail -5 /tmp/{name}.out', check=False).out}")


def proc_status(guest: Guest, pid: int) -> dict:
    text = guest.run(f"cat /proc/{pid}/status").out
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def cgroup_pids(guest: Guest, unit: str = "ftpd.service") -> List[int]:
    group = guest.run(f"systemctl show -p ControlGroup --value {unit}").out.strip()
    out = guest.run(f"cat /sys/fs/cgroup{group}/cgroup.procs", check=False).out
    return [int(pid) for pid in out.split()]


def main_pid(guest: Guest, unit: str = "ftpd.service") -> int:
    return int(guest.run(f"systemctl show -p MainPID --value {unit}").out.strip())


def show(guest: Guest, unit: str, *props: str) -> dict:
    out = guest.run(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).out
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# Linux capability numbers (linux/capability.h), to read /proc/PID/status CapBnd.
CAP_BITS = {f"cap_{name}": bit for bit, name in enumerate((
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace",
    "sys_pacct", "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
    "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read",
    "perfmon", "bpf", "checkpoint_restore",
))}


def cap_mask(names: Tuple[str, ...]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_BITS[name.lower()]
    return mask
