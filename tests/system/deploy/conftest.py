"""The `guest` fixture: a booted Debian 12 guest with ftpd installed by the guide.

Set-up order, each step bounded: base image (cache or fresh), the Debian
package built from this checkout (and a newer build of it, for the upgrade
test) on the payload disk, KVM probe, boot, then `apt install ./ftpd_*.deb`
inside the guest exactly as docs/deployment.md tells an admin. Everything
it makes lives in one temp dir (removed at the end) and one qemu process
(killed at the end); only the base image stays, in the cache, outside CI.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

from ftpd import __version__
from tests.harness import add_summary_line
from tests.system.deploy import image as image_mod
from tests.system.deploy.helpers import restore_shipped_config
from tests.system.deploy.vm import Guest, kvm_works, qemu_binary

sys.path.insert(0, str(image_mod.PROJECT / "tools"))
import build_deb  # noqa: E402

AGENT = Path(__file__).resolve().parent / "agent.py"
BOOT_TIMEOUT = 300.0        # TCG on a loaded 2-core machine; ~1 min when idle
INSTALL_TIMEOUT = 300.0
# The upgrade test's newer release: same tree, a higher version everywhere.
UPGRADE_VERSION = f"{__version__}+1"
GUEST_DEBS = "/mnt/payload/debs"
TIMINGS: Dict[str, float] = {}


def missing_prerequisite() -> Optional[str]:
    project = image_mod.PROJECT
    if not (project / "debian" / "control").exists():
        return "debian/ is not in this checkout (the Debian package of issue 16)"
    missing = build_deb.missing_tools()
    if missing:
        return f"cannot build the Debian package: {missing}"
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


def apt_install(guest: Guest, version: str, downgrade: bool = False) -> str:
    """The guide's `apt install ./ftpd_<version>_all.deb`, offline: the
    dependencies are Debian's packages, already in the image, and the guest
    reaches no network (so nothing could be downloaded)."""
    result = guest.run(apt_install_command(version, downgrade), timeout=INSTALL_TIMEOUT)
    return result.out + result.err


def apt_install_command(version: str, downgrade: bool = False) -> str:
    name = f"ftpd_{version}_all.deb"
    allow = " --allow-downgrades" if downgrade else ""
    # /tmp, not the payload disk: apt's _apt user must be able to read it.
    return (f"cp {GUEST_DEBS}/{name} /tmp/{name} && cd /tmp && DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y{allow} -o Dpkg::Options::=--force-confold ./{name}")


def installed_version(guest: Guest) -> Optional[str]:
    """The installed ftpd package's version; None if it is not installed."""
    fields = guest.run("dpkg-query -W -f '${db:Status-Abbrev} ${Version}' ftpd",
                       check=False).out.split()
    return fields[1] if len(fields) == 2 and fields[0] == "ii" else None


def ensure_installed(guest: Guest, version: Optional[str] = None) -> None:
    """The package installed (at `version`, if given) however a test before
    left the guest: purged, or upgraded to a newer build."""
    current = installed_version(guest)
    if current is None or (version is not None and current != version):
        apt_install(guest, version or __version__, downgrade=current is not None)


def build_debs(dest: Path, log: Path) -> Path:
    """This checkout's package, and a newer build of it to upgrade to."""
    build_deb.build(dest, log=log)
    build_deb.build(dest, version=UPGRADE_VERSION, log=log.with_suffix(".upgrade.log"))
    return dest


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
        mark = time.monotonic()
        debs = build_debs(workdir / "debs", workdir / "deb-build.log")
        TIMINGS["deb builds"] = time.monotonic() - mark
        payload = image_mod.build_payload(workdir, debs, AGENT, log)
        mark = time.monotonic()
        accel = "kvm" if kvm_works(base, workdir) else "tcg"
        TIMINGS["kvm probe"] = time.monotonic() - mark
        with Guest(base, payload, workdir, accel) as vm:
            vm.start(BOOT_TIMEOUT)
            TIMINGS[f"boot ({accel})"] = vm.boot_seconds
            mark = time.monotonic()
            vm.install_log = apt_install(vm, __version__)
            TIMINGS["apt install"] = time.monotonic() - mark
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


@pytest.fixture(autouse=True)
def as_the_guide_leaves_it(guest: Guest) -> Guest:
    """Each test starts where the guide leaves an admin, whatever ran before
    it (the tests pass in any order): the package installed, the shipped
    /etc/ftpd/ftpd.conf in force (anonymous = none), both units running. A
    test that needs more (anonymous uploads, an account, a file) sets it up
    itself; one that stops, upgrades or purges is undone here for the next."""
    ensure_installed(guest)
    restore_shipped_config(guest)
    guest.run("systemctl start ftpd.socket ftpd.service", timeout=90)
    return guest


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Host-side files of one test (up to 48 MiB), removed right after it."""
    path = Path(tempfile.mkdtemp(prefix="ftpd-deploy-host-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
