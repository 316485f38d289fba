"""The guest's disks: a cached Debian bookworm root image and a per-run payload.

The root image is what any Debian 12 host looks like before ftpd arrives:
systemd, udev, python3 and ftpd's dependencies from Debian's packages, built with
mmdebstrap into a directory and packed into a raw ext4 file with
`mke2fs -d`. The guest boots it read-only-underneath (qemu snapshot=on), so
one build serves every run. It is keyed by a hash of everything that goes
into it (suite, package list, the few files added here), so changing any of
them builds a new one; CI (CI=true) always builds fresh into a temp dir.

The payload disk carries what changes each run: a copy of this checkout
(the admin's clone), the .deb packages built from it, and the guest agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[2]
SUITE = "bookworm"
# What a plain Debian 12 server has, plus the tools the guide names
# (logrotate for the rotation policy, nc for its "try it" line), plus the
# Debian packages ftpd's .deb depends on, so `apt install ./ftpd_*.deb`
# works offline, as from a local mirror.
PACKAGES = (
    "systemd", "systemd-sysv", "udev", "linux-image-amd64",
    "python3", "procps", "iproute2", "logrotate", "netcat-openbsd",
    "python3-psutil", "python3-setproctitle", "python3-daemon", "python3-tqdm", "python3-seccomp",
    "python3-prometheus-client",
)
# Documentation and translations are dead weight in a test guest.
DPKG_OPTS = (
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/info/*",
)
BUILD_TIMEOUT = 420          # measured 60-160 s; pytest-timeout (600 s) bounds the rest
AGENT_PORT = "ftpd.agent"
GUEST_IP, GATEWAY_IP = "10.0.2.15", "10.0.2.2"

# Files added to the root image. The agent itself lives on the payload disk
# (it changes with the checkout); the image only knows how to start it.
OVERLAY: Dict[str, str] = {
    "etc/hostname": "ftpd-guest\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 ftpd-guest\n",
    "etc/fstab": "/dev/vda / ext4 rw,noatime 0 1\n"
                 "LABEL=payload /mnt/payload ext4 ro,nofail,x-systemd.device-timeout=60s 0 0\n",
    # qemu user networking: static, so boot never waits for DHCP.
    "etc/systemd/network/10-qemu.network":
        "[Match]\nName=en* eth*\n\n[Network]\n"
        f"Address={GUEST_IP}/24\nGateway={GATEWAY_IP}\nLinkLocalAddressing=no\n",
    "etc/systemd/system/ftpd-test-agent.service":
        "[Unit]\nDescription=ftpd deployment test agent (virtio port "
        f"{AGENT_PORT})\nRequiresMountsFor=/mnt/payload\n\n"
        "[Service]\nExecStart=/usr/bin/python3 /mnt/payload/agent.py\n"
        "StandardOutput=journal+console\n\n"
        "[Install]\nWantedBy=multi-user.target\n",
    # The journal keeps what the test greps for, in memory.
    "etc/systemd/journald.conf.d/test.conf": "[Journal]\nStorage=volatile\nRateLimitBurst=0\n",
}
ENABLE = ("systemd-networkd.service", "ftpd-test-agent.service")
# Units that only cost boot time in a throwaway guest.
MASK = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "fstrim.timer", "getty@tty1.service",
    "systemd-timesyncd.service", "man-db.timer", "dpkg-db-backup.timer",
)


class BuildError(RuntimeError):
    pass


def image_key() -> str:
    recipe = json.dumps({"suite": SUITE, "packages": PACKAGES, "dpkg": DPKG_OPTS,
                         "overlay": OVERLAY, "enable": ENABLE, "mask": MASK}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("FTPD_DEPLOY_CACHE") or \
        os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                     "ftpd-deploy")
    return Path(base)


class BaseImage:
    """root.img + vmlinuz + initrd.img for one image key."""

    FILES = ("root.img", "vmlinuz", "initrd.img")

    def __init__(self, directory: Path):
        self.dir = directory
        self.root, self.kernel, self.initrd = (directory / name for name in self.FILES)

    def complete(self) -> bool:
        return (self.dir / "done").exists() and all((self.dir / n).exists() for n in self.FILES)


def cached_image() -> Optional[BaseImage]:
    image = BaseImage(cache_root() / image_key())
    return image if image.complete() else None


def obtain_image(workdir: Path, log: Path) -> BaseImage:
    """A usable base image: from the cache locally, always fresh under CI."""
    if os.environ.get("CI") == "true":
        image = BaseImage(workdir / "image")
        build_image(image.dir, log)
        return image
    image = cached_image()
    if image is not None:
        return image
    target = cache_root() / image_key()
    staging = Path(tempfile.mkdtemp(prefix=f".{image_key()}.", dir=_mkdirs(cache_root())))
    try:
        build_image(staging, log)
        for old in cache_root().iterdir():      # one image at a time: no pile-up
            if old.name != staging.name and not old.name.startswith("."):
                remove_tree(old)
        os.rename(staging, target)
    finally:
        remove_tree(staging)
    return BaseImage(target)


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_image(out: Path, log: Path) -> None:
    """mmdebstrap a root directory, add OVERLAY, pack it into ext4."""
    _mkdirs(out)
    rootfs = out / "rootfs"
    deadline = time.monotonic() + BUILD_TIMEOUT
    try:
        _run(["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
              "--include=" + ",".join(PACKAGES),
              *(f"--dpkgopt={opt}" for opt in DPKG_OPTS),
              SUITE, str(rootfs)], log, deadline)
        _customize(rootfs, log, deadline)
        image = BaseImage(out)
        shutil.copyfile(_newest(rootfs / "boot", "vmlinuz-"), image.kernel)
        shutil.copyfile(_newest(rootfs / "boot", "initrd.img-"), image.initrd)
        size_mb = _du_mb(rootfs) + 1024            # room for the venv and uploads
        _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-d", str(rootfs),
              str(image.root), f"{size_mb}M"], log, deadline)
        (out / "packages.txt").write_text(_installed(rootfs))
        (out / "done").write_text(image_key() + "\n")
    finally:
        remove_tree(rootfs)


def _customize(rootfs: Path, log: Path, deadline: float) -> None:
    for rel, text in OVERLAY.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (rootfs / "mnt/payload").mkdir(parents=True, exist_ok=True)
    # Root logs in on the serial console without a password: for a person
    # watching a stuck boot, never used by the test itself.
    _run(["chroot", str(rootfs), "passwd", "-d", "root"], log, deadline)
    _run(["systemctl", f"--root={rootfs}", "enable", *ENABLE], log, deadline)
    _run(["systemctl", f"--root={rootfs}", "mask", *MASK], log, deadline)


def _newest(directory: Path, prefix: str) -> Path:
    found = sorted(p for p in directory.iterdir() if p.name.startswith(prefix))
    if not found:
        raise BuildError(f"no {prefix}* in {directory}")
    return found[-1]


def _du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sxm", str(path)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return int(out.split()[0])


def _installed(rootfs: Path) -> str:
    return subprocess.run(["chroot", str(rootfs), "dpkg-query", "-W"], capture_output=True,
                          text=True, timeout=60).stdout


def _run(argv: List[str], log: Path, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise BuildError(f"image build out of time before: {' '.join(argv)}")
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        # A group of its own: on a timeout (or pytest's) the whole tree is
        # stopped, and SIGTERM first lets mmdebstrap unmount its chroot.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired as exc:
            _stop_group(proc)
            raise BuildError(f"timed out: {' '.join(argv)} (log: {log})") from exc
        except BaseException:
            _stop_group(proc)
            raise
    if code != 0:
        raise BuildError(f"exit {code}: {' '.join(argv)}\n{_tail(log)}")


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _mounts_below(path: Path) -> List[str]:
    top = os.path.realpath(path)
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4].encode().decode("unicode_escape") for line in handle]
    return [p for p in points if p == top or p.startswith(top + os.sep)]


def remove_tree(path: Path) -> None:
    """rm -rf that never crosses into a mount (a killed mmdebstrap leaves its
    chroot's /proc, /sys and /dev nodes bind-mounted from the host)."""
    for point in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=60)
    left = _mounts_below(path)
    if left:
        raise BuildError(f"not removing {path}: still mounted below it: {left}")
    shutil.rmtree(path, ignore_errors=True)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def copy_checkout(dest: Path) -> None:
    """The checkout as an admin's clone would have it: tracked-looking files only."""
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", "build",
                                    "dist", "*.egg-info", ".pytest_cache", ".hypothesis")
    shutil.copytree(PROJECT, dest, ignore=ignore, symlinks=True)


def build_payload(workdir: Path, debs: Path, agent: Path, log: Path) -> Path:
    """payload.img: src/ (the checkout), debs/ (the packages to install), agent.py."""
    tree = workdir / "payload"
    copy_checkout(tree / "src")
    shutil.copytree(debs, tree / "debs")
    shutil.copy(agent, tree / "agent.py")
    image = workdir / "payload.img"
    size_mb = _du_mb(tree) + 64
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "payload", "-d", str(tree),
          str(image), f"{size_mb}M"], log, time.monotonic() + 120)
    shutil.rmtree(tree)
    return image


def build_wheels(dest: Path, log: Path, requirements: Iterable[str] = ()) -> Path:
    """Wheels for an offline `pip install <checkout>` (deploy/install.sh --wheels DIR;
    tests/test_deploy.py uses them).

    The project's dependencies, plus setuptools and wheel for pip's isolated
    build of the checkout; the project's own wheel is built too, as a check
    that the checkout builds at all."""
    _mkdirs(dest)
    source = dest.parent / "wheel-src"      # pip builds in-tree: keep the checkout clean
    copy_checkout(source)
    try:
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest),
              str(source), "setuptools>=61", "wheel", *requirements], log,
             time.monotonic() + 300)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return dest
