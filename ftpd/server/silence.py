"""Silence costs no slot for long: which sessions have not yet sent a
request, and the early drop (OpenSSH's MaxStartups) that it feeds.

The parent cannot see a session's traffic, so each session tells it: a byte
per slot in an anonymous shared mapping made before any fork (threads share
it as well). The parent claims a slot as it spawns a session and frees it
as it reaps it; the session sets its byte once, on its first complete
request. Only the parent allocates and only the session writes a 1, so no
lock is needed.

While more than `EARLY_DROP_START` of `max_clients` sessions are silent, the
parent refuses new connections with a probability rising linearly from 0 to
1 at max_clients: a flood of silent connections cannot take every slot, and
a real client still gets in on a retry. Each silent session is then ended
by `[server] first_request_timeout` in the session itself.
"""

from __future__ import annotations

import mmap
import random
from typing import Callable, Dict, List

EARLY_DROP_START = 0.6        # fraction of max_clients silent before any refusal
SILENT, SPOKEN = 0, 1


class FirstRequestTable:
    """One byte per session slot, shared with every session."""

    def __init__(self, slots: int):
        self.slots = slots
        self.memory = mmap.mmap(-1, slots)        # MAP_SHARED|MAP_ANONYMOUS, zeroed
        self.free: List[int] = list(range(slots - 1, -1, -1))

    def claim(self) -> "Slot":
        """In the parent, before the spawn. The caller never spawns more than
        `slots` sessions at once from one table (max_clients)."""
        index = self.free.pop()
        self.memory[index] = SILENT
        return Slot(self, index)


class Slot:
    def __init__(self, table: FirstRequestTable, index: int):
        self.table, self.index = table, index

    def mark_spoken(self) -> None:
        """In the session: its first complete request has arrived."""
        self.table.memory[self.index] = SPOKEN

    @property
    def silent(self) -> bool:
        return self.table.memory[self.index] == SILENT

    def release(self) -> None:
        """In the parent, once the session is reaped."""
        self.table.free.append(self.index)


class Startups:
    """The parent's view: a slot for each live session, by spawner ident."""

    def __init__(self, max_clients: int):
        self.table = FirstRequestTable(max_clients)
        self.slots: Dict[int, Slot] = {}

    def resize(self, max_clients: int) -> None:
        """After a reload. Live sessions keep their slots in the old table,
        which lives on as long as they do."""
        if max_clients != self.table.slots:
            self.table = FirstRequestTable(max_clients)

    def claim(self) -> Slot:
        return self.table.claim()

    def track(self, ident: int, slot: Slot) -> None:
        self.slots[ident] = slot

    def forget(self, ident: int) -> None:
        slot = self.slots.pop(ident, None)
        if slot is not None:
            slot.release()

    def silent(self) -> int:
        return sum(1 for slot in self.slots.values() if slot.silent)


def drop_probability(silent: int, max_clients: int) -> float:
    """0 up to EARLY_DROP_START * max_clients silent sessions, then rising
    linearly to 1 at max_clients."""
    start = max_clients * EARLY_DROP_START
    if silent <= start:
        return 0.0
    return min(1.0, (silent - start) / (max_clients - start))


def early_drop(silent: int, max_clients: int,
               draw: Callable[[], float] = random.random) -> bool:
    """Whether to refuse the next connection; `draw` in [0, 1)."""
    probability = drop_probability(silent, max_clients)
    return probability > 0 and draw() < probability


def no_report() -> None:
    """A session whose first request nobody counts (unit tests, tools)."""
