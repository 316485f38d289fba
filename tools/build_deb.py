"""Build ftpd_<version>_all.deb from a copy of this checkout.

    python3 tools/build_deb.py --out DIR [--version 0.1.0+1]

The build runs `dpkg-buildpackage -us -uc -b` in a temporary copy (so the
checkout gets no build litter) and leaves the .deb, .changes and .buildinfo
in DIR. --version builds a newer release of the same tree: a changelog entry
on top and the same version in ftpd/__init__.py, so the daemon's greeting
shows it (the deployment test upgrades to such a build).
Needs: apt-get install debhelper dh-python pybuild-plugin-pyproject
python3-all python3-setuptools python3-wheel (as .ci/run does).
"""

from __future__ import annotations

import argparse
import email.utils
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

PROJECT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600
# Debian's own tools and interpreter: a python3 earlier on PATH (pyenv, a
# venv) must not be the one pybuild builds for.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", "build",
                                "dist", "*.egg-info", ".pytest_cache", ".hypothesis",
                                ".pybuild", "generated")


class BuildError(RuntimeError):
    pass


def missing_tools() -> Optional[str]:
    for tool in ("dpkg-buildpackage", "dh", "dh_python3"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            return f"{tool} is not installed (apt-get install debhelper dh-python ...)"
    if not Path("/usr/share/perl5/Debian/Debhelper/Sequence/python3.pm").exists() and \
            shutil.which("pybuild", path=SYSTEM_PATH) is None:
        return "pybuild is not installed (apt-get install dh-python)"
    return None


def changelog_version(changelog: Path) -> str:
    match = re.match(r"\S+ \(([^)]+)\)", changelog.read_text())
    if not match:
        raise BuildError(f"{changelog}: no version in the first line")
    return match.group(1)


def set_version(tree: Path, version: str) -> None:
    """A new top changelog entry and the same version in the code."""
    changelog = tree / "debian" / "changelog"
    date = email.utils.format_datetime(email.utils.localtime())
    entry = (f"ftpd ({version}) unstable; urgency=medium\n\n"
             f"  * Rebuild as {version}.\n\n"
             f" -- ftpd maintainers <ftpd-maintainers@example.org>  {date}\n\n")
    changelog.write_text(entry + changelog.read_text())
    init = tree / "ftpd" / "__init__.py"
    text, count = re.subn(r'^__version__ = ".*"$', f'__version__ = "{version}"',
                          init.read_text(), flags=re.M)
    if count != 1:
        raise BuildError(f"{init}: no __version__ line to set")
    init.write_text(text)


def build(out: Path, version: Optional[str] = None, log: Optional[Path] = None) -> Path:
    """Build into `out`; the path of the .deb."""
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftpd-deb-"))
    try:
        tree = work / "ftpd"          # dpkg-buildpackage writes its results to ..
        shutil.copytree(PROJECT, tree, ignore=IGNORE, symlinks=True)
        if version:
            set_version(tree, version)
        version = changelog_version(tree / "debian" / "changelog")
        env = dict(os.environ, PATH=SYSTEM_PATH, LC_ALL="C.UTF-8")
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(name, None)
        result = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env,
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if log is not None:
            log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise BuildError(f"dpkg-buildpackage failed ({result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-4000:]}")
        for built in work.iterdir():
            if built.is_file():
                shutil.move(str(built), out / built.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    deb = out / f"ftpd_{version}_all.deb"
    if not deb.exists():
        raise BuildError(f"the build made no {deb.name}")
    return deb


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the .deb goes")
    parser.add_argument("--version", help="build as this (newer) version")
    args = parser.parse_args(argv)
    reason = missing_tools()
    if reason:
        print(f"build_deb: {reason}", file=sys.stderr)
        return 1
    print(build(args.out, args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
