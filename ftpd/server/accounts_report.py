"""`ftpd passwd --list` and the accounts part of `ftpd status`: each
account's limits and its home's usage as last counted (see quota.py)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ftpd.server import auth, quota


def _size(value: Optional[int], none: str = "-") -> str:
    if value is None:
        return none
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if value >= 1 << shift:
            return f"{value / (1 << shift):.1f}{unit}"
    return str(value)


def rows(path: str, root: str) -> List[Dict[str, Any]]:
    found = []
    for record in auth.list_accounts(path):
        limits = record.limits
        usage = quota.read_usage(os.path.join(root, record.home)) \
            if limits.quota or limits.max_files else None
        found.append({"user": record.user, "access": record.access, "home": "/" + record.home,
                      "max_rate": limits.max_rate, "quota": limits.quota,
                      "max_files": limits.max_files,
                      "used_bytes": usage[0] if usage else None,
                      "used_files": usage[1] if usage else None})
    return found


def describe(path: str, root: str) -> str:
    lines = [f"{'USER':<16} {'ACCESS':<6} {'RATE/s':>8} {'USED':>9} {'QUOTA':>8} "
             f"{'FILES':>8} {'MAX':>8}  HOME"]
    for row in rows(path, root):
        rate = "default" if row["max_rate"] is None else (_size(row["max_rate"])
                                                          if row["max_rate"] else "unlimited")
        lines.append(f"{row['user']:<16} {row['access']:<6} {rate:>8} "
                     f"{_size(row['used_bytes']):>9} {_size(row['quota'] or None):>8} "
                     f"{'-' if row['used_files'] is None else row['used_files']:>8} "
                     f"{row['max_files'] or '-':>8}  "
                     f"{row['home']}")
    return "\n".join(lines)


def quota_rows(path: str, root: str) -> List[Dict[str, Any]]:
    """Accounts with a quota, for `ftpd status`; none when the file is unreadable
    (it may be root's only: status still shows the sessions)."""
    if not path:
        return []
    try:
        return [row for row in rows(path, root) if row["quota"] or row["max_files"]]
    except (OSError, ValueError, auth.AuthError):
        return []


def render_quotas(found: List[Dict[str, Any]]) -> str:
    lines = ["quotas:"]
    for row in found:
        used = "not counted yet" if row["used_bytes"] is None else \
            f"{_size(row['used_bytes'])} of {_size(row['quota'] or None, 'unlimited')}, " \
            f"{row['used_files']} of {row['max_files'] or 'unlimited'} files"
        lines.append(f"  {row['user']} {row['home']}: {used}")
    return "\n".join(lines)
