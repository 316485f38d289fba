"""A token bucket for a session's transfers, both directions.

Tokens are bytes; they accrue at `rate` per second up to one second's worth,
so an idle session can burst at most that much. `take(n)` spends n tokens
and, when that leaves a debt, sleeps until it is paid: the process is
asleep in the kernel while it waits, not polling. A download pays for each
sendfile step before sending it, an upload for each chunk after reading it
(the unread rest then waits in the socket buffers, which slows the sender).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

MIN_STEP = 16 << 10        # below this, sendfile calls cost more than they move
STEPS_PER_SECOND = 10      # a limited download wakes this often: smooth, cheap


class TokenBucket:
    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        # Empty at the start: the first second runs at the rate, not at line speed.
        self.tokens = 0.0
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, count: int) -> float:
        """Spend `count` bytes' worth; returns the seconds slept."""
        self._refill()
        self.tokens -= count
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate
        self.sleep(wait)
        return wait

    def step(self, largest: int) -> int:
        """The sendfile step for a limited download: a tenth of a second's worth."""
        return max(MIN_STEP, min(largest, self.rate // STEPS_PER_SECOND))


def bucket_for(rate: int) -> Optional[TokenBucket]:
    """None for 0 (unlimited): an unlimited session pays nothing per chunk."""
    return TokenBucket(rate) if rate > 0 else None


def effective_rate(own: Optional[int], default: int) -> int:
    """An account's or anonymous limit; None defers to the server-wide default."""
    return default if own is None else own
