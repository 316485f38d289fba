"""Sizes as people write them (`64K`, `10M`: whole numbers with K, M, G or T,
powers of 1024): shared by the config file and ftpc's options, so ftpc need
not import the server's settings table to read `--limit-rate 1M`."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\A\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (a number with optional K, M, G or T)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]
