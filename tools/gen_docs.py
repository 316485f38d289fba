"""Regenerate etc/ftpd.conf and the README's settings reference from the table.

    python3 tools/gen_docs.py

tests/test_config.py fails when either has drifted from ftpd/config.py.
"""

import re
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ftpd import config  # noqa: E402

HEADER = """\
# /etc/ftpd/ftpd.conf: settings of the ftpd file server.
#
# Every setting is listed below with its help, commented out at its built-in
# default; a line without '#' is what this shipped file changes for a real
# server. Unknown sections or keys are errors: the server refuses to start
# (exit 78) and names the file, section and key. Sizes take K, M, G or T
# suffixes (powers of 1024). Validate with:
#     ftpd -c /etc/ftpd/ftpd.conf check
# and apply to a running server with `systemctl reload ftpd` (SIGHUP).

"""

# What a packaged server runs with (deploy/install.sh installs this file),
# where it differs from the loopback quick-start defaults: LAN-wide, confined
# sessions as user ftpd, accounts only (`ftpd passwd USER --access write`).
SHIPPED = {
    ("server", "listen"): "0.0.0.0:8021,[::]:8021",
    ("server", "root"): "/srv/ftpd",
    ("server", "user"): "ftpd",
    ("server", "pidfile"): "/run/ftpd/ftpd.pid",
    ("access", "anonymous"): "none",
    ("access", "users_file"): "/etc/ftpd/users",
    ("log", "transfer_log"): "/var/log/ftpd/transfer.log",
}

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def shipped_conf() -> str:
    out = [HEADER.rstrip("\n"), ""]
    for section in config.SECTIONS:
        out.append(f"[{section}]")
        for s in (s for s in config.SETTINGS if s.section == section):
            out.append(f"# {s.help}")
            out.append(f"#{s.key} = {s.default}")
            if (section, s.key) in SHIPPED:
                out.append(f"{s.key} = {SHIPPED[(section, s.key)]}")
        out.append("")
    return "\n".join(out)


def readme_with_reference(text: str) -> str:
    block = f"{BEGIN}\n{config.reference_markdown()}{END}"
    return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: block, text,
                  flags=re.S)


if __name__ == "__main__":
    (PROJECT / "etc" / "ftpd.conf").write_text(shipped_conf())
    readme = PROJECT / "README.md"
    readme.write_text(readme_with_reference(readme.read_text()))
