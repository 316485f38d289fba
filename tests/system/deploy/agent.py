#!/usr/bin/python3
"""Runs INSIDE the test guest (Debian's python3, stdlib only).

Serves the host over the virtio-serial port "ftpd.agent": one JSON request
per line in, one JSON reply per line out, strictly in order.

    {"id": 7, "op": "run", "cmd": "systemctl is-active ftpd", "timeout": 30}
    -> {"id": 7, "rc": 0, "out": "active\\n", "err": ""}
    {"id": 8, "op": "write", "path": "/etc/ftpd/ftpd.conf", "data": "<base64>", "mode": 416}
    -> {"id": 8, "rc": 0}
    {"id": 9, "op": "ping"} -> {"id": 9, "rc": 0, "out": "<boot id>"}

This is the test's hand on the guest's keyboard: everything it does goes
through ordinary commands (systemctl, journalctl, deploy/install.sh).
"""

import base64
import glob
import json
import os
import subprocess
import sys
import time

PORT_NAME = "ftpd.agent"


def find_port(name, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in glob.glob("/sys/class/virtio-ports/*"):
            try:
                with open(os.path.join(entry, "name")) as handle:
                    if handle.read().strip() == name:
                        return "/dev/" + os.path.basename(entry)
            except OSError:
                continue
        time.sleep(0.5)
    raise SystemExit(f"agent: no virtio port named {name}")


def run(request):
    try:
        proc = subprocess.run(["/bin/sh", "-c", request["cmd"]], capture_output=True,
                              timeout=request.get("timeout", 60), stdin=subprocess.DEVNULL,
                              env=dict(os.environ, **request.get("env", {})))
    except subprocess.TimeoutExpired as exc:
        return {"rc": -1, "out": (exc.stdout or b"").decode("utf-8", "replace"),
                "err": f"agent: timed out after {exc.timeout}s"}
    return {"rc": proc.returncode, "out": proc.stdout.decode("utf-8", "replace"),
            "err": proc.stderr.decode("utf-8", "replace")}


def write(request):
    path = request["path"]
    temp = f"{path}.agent-tmp"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(temp, "wb") as handle:
        handle.write(base64.b64decode(request["data"]))
    os.chmod(temp, request.get("mode", 0o644))
    os.replace(temp, path)
    return {"rc": 0}


def ping(request):
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return {"rc": 0, "out": handle.read().strip()}


OPS = {"run": run, "write": write, "ping": ping}


def handle(line):
    request = {}
    try:
        request = json.loads(line)
        reply = OPS[request["op"]](request)
    except Exception as exc:       # the agent must outlive any one bad request
        reply = {"rc": -2, "out": "", "err": f"agent: {type(exc).__name__}: {exc}"}
    reply["id"] = request.get("id") if isinstance(request, dict) else None
    return (json.dumps(reply) + "\n").encode()


def main():
    fd = os.open(find_port(PORT_NAME), os.O_RDWR)
    print(f"agent: serving on virtio port {PORT_NAME}", flush=True)
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            time.sleep(0.2)        # host not connected yet (or reconnecting)
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                reply = handle(line)
                while reply:
                    reply = reply[os.write(fd, reply):]


if __name__ == "__main__":
    sys.exit(main())
