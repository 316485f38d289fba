"""Boot the guest with qemu-system-x86_64 and drive it through its agent.

The guest gets two virtio disks (the cached root image with snapshot=on, so
it is never written, and the per-run payload), user networking with one
forward from host loopback to the guest's port 8021, its console in a file,
and a virtio-serial port whose host end is a unix socket the agent answers on.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from tests.harness import wait_for_port
from tests.system.deploy.image import AGENT_PORT, BaseImage

GUEST_FTPD_PORT = 8021
KVM_PROBE_TIMEOUT = 20.0
MEMORY_MB = 1024


class GuestError(RuntimeError):
    pass


@dataclass
class Result:
    cmd: str
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"$ {self.cmd}\n[exit {self.rc}]\n{self.out}{self.err}"


def qemu_binary() -> Optional[str]:
    for directory in os.environ.get("PATH", "/usr/bin").split(os.pathsep) + ["/usr/bin"]:
        path = os.path.join(directory, "qemu-system-x86_64")
        if os.access(path, os.X_OK):
            return path
    return None


def kvm_works(image: BaseImage, workdir: Path) -> bool:
    """Boot the kernel alone under KVM until it panics for want of a root fs.

    On this kind of machine /dev/kvm can exist while a KVM guest hangs: only
    a kernel that gets all the way to its root-mount panic (and reboots, which
    -no-reboot turns into an exit) within a few seconds counts as working."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    console = workdir / "kvm-probe.console"
    argv = [qemu_binary() or "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host",
            "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{console}", "-kernel", str(image.kernel),
            "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent rootwait=0"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=KVM_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    finally:
        stop_process(proc)
    text = console.read_text(errors="replace") if console.exists() else ""
    return "Kernel panic" in text or "VFS: Unable to mount root" in text


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


class Guest:
    """One running qemu guest; use as a context manager so it always dies."""

    def __init__(self, image: BaseImage, payload: Path, workdir: Path, accel: str):
        self.image, self.payload, self.workdir, self.accel = image, payload, workdir, accel
        self.console = workdir / "console.log"
        self.agent_path = workdir / "agent.sock"
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.sock: Optional[socket.socket] = None
        self.buffer = b""
        self.next_id = 0
        self.boot_seconds = 0.0
        self.reboot_seconds = 0.0

    def argv(self) -> List[str]:
        cpu = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" \
            else ["-accel", "tcg", "-cpu", "max"]
        # Port 0: qemu binds whatever port is free; start() reads which.
        forward = f"tcp:127.0.0.1:0-:{GUEST_FTPD_PORT}"
        return [qemu_binary() or "qemu-system-x86_64", *cpu, "-smp", "2", "-m", str(MEMORY_MB),
                # Reboots stay in this qemu (the snapshot lives as long as it
                # does); a kernel panic is caught on the console instead.
                "-nodefaults", "-display", "none",
                "-serial", f"file:{self.console}",
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=error",
                "-drive", f"file={self.image.root},format=raw,if=virtio,snapshot=on",
                "-drive", f"file={self.payload},format=raw,if=virtio,readonly=on",
                # restrict=on: the guest reaches nothing; only the forward gets in.
                "-netdev", f"user,id=lan,restrict=on,hostfwd={forward}",
                "-device", "virtio-net-pci,netdev=lan,romfile=",
                "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
                "-device", "virtio-serial-pci",
                "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}"]

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, boot_timeout: float) -> None:
        """Start qemu and wait until the agent answers (the guest is up)."""
        started = time.monotonic()
        with open(self.workdir / "qemu.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        if not self._connect_agent(deadline=time.monotonic() + 15):
            self.stop()
            raise GuestError(f"qemu did not start: {self.qemu_log()}")
        # The forward is qemu's only TCP listener (the agent is a unix socket).
        self.port = wait_for_port(self.proc)
        self.wait_agent(started + boot_timeout)
        self.boot_seconds = time.monotonic() - started

    def _connect_agent(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.agent_path))
                self.sock = sock
                return True
            except OSError:
                sock.close()
                time.sleep(0.1)
        return False

    def wait_agent(self, deadline: float, old_boot: str = "") -> str:
        """Ping until the agent of a boot other than `old_boot` answers; its boot id."""
        while time.monotonic() < deadline:
            self._alive()
            if "Kernel panic" in self.console_tail(200):
                raise GuestError(f"guest kernel panic:\n{self.console_tail()}")
            try:
                reply = self.request({"op": "ping"},
                                     timeout=min(3.0, max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                continue
            if reply.get("out") and reply["out"] != old_boot:
                return reply["out"]
            time.sleep(1.0)                  # the old system, still shutting down
        raise GuestError(f"guest agent did not answer in time ({self.accel});"
                         f" console tail:\n{self.console_tail()}")

    def reboot(self, timeout: float) -> float:
        """`systemctl reboot` and wait for the new boot's agent; seconds taken."""
        started = time.monotonic()
        old = self.wait_agent(started + 30)
        try:
            self.request({"op": "run", "cmd": "systemctl reboot", "timeout": 10}, timeout=10)
        except TimeoutError:
            pass                             # the agent went down before it could answer
        self.wait_agent(started + timeout, old_boot=old)
        self.reboot_seconds = time.monotonic() - started
        return self.reboot_seconds

    def _alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise GuestError(f"qemu exited: {self.qemu_log()}\nconsole:\n{self.console_tail()}")

    def request(self, request: Dict, timeout: float) -> Dict:
        """Send one request, return its reply; TimeoutError if none in time."""
        assert self.sock is not None
        self.next_id += 1
        request = dict(request, id=self.next_id)
        self.sock.sendall((json.dumps(request) + "\n").encode())
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                reply = json.loads(line) if line.strip() else {}
                if reply.get("id") == self.next_id:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {request['op']} in {timeout}s")
            self.sock.settimeout(min(remaining, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                self._alive()
                continue
            if not chunk:
                raise GuestError("agent socket closed")
            self.buffer += chunk

    def run(self, cmd: str, timeout: float = 60.0, check: bool = True,
            env: Optional[Dict[str, str]] = None) -> Result:
        """Run a shell command in the guest as root."""
        reply = self.request({"op": "run", "cmd": cmd, "timeout": timeout, "env": env or {}},
                             timeout=timeout + 15)
        result = Result(cmd, reply["rc"], reply.get("out", ""), reply.get("err", ""))
        if check and result.rc != 0:
            raise GuestError(str(result))
        return result

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        data = base64.b64encode(text.encode()).decode()
        reply = self.request({"op": "write", "path": path, "data": data, "mode": mode}, 30)
        if reply["rc"] != 0:
            raise GuestError(f"write {path}: {reply.get('err')}")

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self.agent_path.exists():
            self.agent_path.unlink()

    def console_tail(self, lines: int = 40) -> str:
        if not self.console.exists():
            return "(no console output)"
        return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])

    def qemu_log(self) -> str:
        path = self.workdir / "qemu.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
