"""The package's layering: the server and the client sides never import each
other, and the client side needs none of the server's dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.harness import PROJECT, project_env

PACKAGE = PROJECT / "ftpd"


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def side_modules(side: str):
    return sorted((PACKAGE / side).glob("*.py"))


def test_both_sides_exist_and_hold_modules():
    assert len(side_modules("server")) > 10
    assert len(side_modules("ftpc")) > 4


def test_server_never_imports_the_client_side():
    offenders = [(p.name, m) for p in side_modules("server") for m in imported_modules(p)
                 if m.startswith("ftpd.ftpc")]
    assert offenders == []


def test_client_side_never_imports_the_server():
    offenders = [(p.name, m) for p in side_modules("ftpc") for m in imported_modules(p)
                 if m.startswith("ftpd.server")]
    assert offenders == []


def test_shared_layer_imports_neither_side_at_module_level():
    shared = [PACKAGE / "protocol.py", PACKAGE / "stream.py", PACKAGE / "fileutil.py",
              PACKAGE / "sizes.py",
              *sorted((PACKAGE / "client").glob("*.py"))]
    offenders = [(p.name, m) for p in shared for m in imported_modules(p)
                 if m.startswith(("ftpd.server", "ftpd.ftpc"))]
    assert offenders == []


def test_the_client_side_loads_no_server_dependency():
    code = ("import sys, ftpd.client, ftpd.ftpc, ftpd.ftpc.shell, ftpd.ftpc.transfer\n"
            "bad = sorted(m for m in ('psutil', 'setproctitle', 'daemon', 'ftpd.server', "
            "'ftpd.config') "
            "if m in sys.modules)\n"
            "print(','.join(bad))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=project_env(), timeout=60, check=True)
    assert result.stdout.strip() == ""
