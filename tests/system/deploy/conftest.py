"""The `guest` fixture: a booted Debian 12 guest with ftpd installed by the guide.

Set-up order, each step bounded: base image (cache or fresh), wheels and
payload from this checkout, KVM probe, boot, then deploy/install.sh run
inside the guest exactly as docs/deployment.md tells an admin. Everything
it makes lives in one temp dir (removed at the end) and one qemu process
(killed at the end); only the base image stays, in the cache, outside CI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

from tests.harness import add_summary_line
from tests.system.deploy import image as image_mod
from tests.system.deploy.vm import Guest, kvm_works, qemu_binary

AGENT = Path(__file__).resolve().parent / "agent.py"
BOOT_TIMEOUT = 300.0        # TCG on a loaded 2-core machine; ~1 min when idle
INSTALL_TIMEOUT = 300.0
TIMINGS: Dict[str, float] = {}


def missing_prerequisite() -> Optional[str]:
    project = image_mod.PROJECT
    if not (project / "deploy" / "install.sh").exists():
        return "deploy/install.sh is not in this checkout (the systemd units of issue 4)"
    if qemu_binary() is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if shutil.which("mke2fs") is None:
        return "mke2fs is not installed (apt-get install e2fsprogs)"
    building = os.environ.get("CI") == "true" or image_mod.cached_image() is None
    if building and shutil.which("mmdebstrap") is None:
        return "mmdebstrap is not installed (apt-get install mmdebstrap)"
    if building and os.geteuid() != 0:
        return ("building the guest image needs root (mmdebstrap --mode=root); run once as "
                f"root to fill {image_mod.cache_root()}, or run .ci/run")
    return None


def install_ftpd(guest: Guest) -> str:
    """The guide's install, from the admin's clone, with pip offline."""
    result = guest.run(
        "rm -rf /root/ftpd && cp -a /mnt/payload/src /root/ftpd && cd /root/ftpd && "
        "./deploy/install.sh", timeout=INSTALL_TIMEOUT,
        # Offline pip: the same knobs an admin without internet access would use.
        env={"HOME": "/root", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/mnt/payload/wheels",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return result.out + result.err


@pytest.fixture(scope="package")
def guest(request) -> Iterator[Guest]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(f"deployment test skipped: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="ftpd-deploy-"))
    log = workdir / "build.log"
    started = time.monotonic()
    try:
        base = image_mod.obtain_image(workdir, log)
        TIMINGS["image"] = time.monotonic() - started
        wheels = image_mod.build_wheels(workdir / "wheels", log)
        payload = image_mod.build_payload(workdir, wheels, AGENT, log)
        mark = time.monotonic()
        accel = "kvm" if kvm_works(base, workdir) else "tcg"
        TIMINGS["kvm probe"] = time.monotonic() - mark
        with Guest(base, payload, workdir, accel) as vm:
            vm.start(BOOT_TIMEOUT)
            TIMINGS[f"boot ({accel})"] = vm.boot_seconds
            mark = time.monotonic()
            vm.install_log = install_ftpd(vm)
            TIMINGS["install.sh"] = time.monotonic() - mark
            yield vm
            if vm.reboot_seconds:
                TIMINGS["reboot"] = vm.reboot_seconds
    finally:
        TIMINGS["total"] = time.monotonic() - started
        parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in TIMINGS.items())
        add_summary_line(request.config, f"deployment test timings: {parts}")
        if os.environ.get("FTPD_DEPLOY_KEEP"):
            print(f"deployment test: kept {workdir}")
        else:
            image_mod.remove_tree(workdir)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Host-side files of one test (up to 48 MiB), removed right after it."""
    path = Path(tempfile.mkdtemp(prefix="ftpd-deploy-host-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
