"""In-memory rate limits shaped like Supabase Auth's ``[auth.rate_limit]`` settings.

Each limit is a sliding-window counter per key (client IP, e-mail address, or the
whole instance for ``email_sent``/``sms_sent``, which Supabase counts per project).
Every key remembers its own window, so pruning idle keys (past :data:`PRUNE_AT` keys)
never forgets the hits of a longer limit than the one being checked.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

#: number of keys past which idle ones are pruned (then again each time the count doubles)
PRUNE_AT = 100_000


class Limiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._hits: dict[tuple[str, str], tuple[float, deque[float]]] = {}
        self._clock = clock
        self._prune_at = PRUNE_AT

    def allow(self, kind: str, key: str, limit: int, window: float) -> bool:
        """Record one hit; False (and nothing recorded) when ``limit`` hits happened in ``window`` s."""
        now = self._clock()
        entry = self._hits.get((kind, key))
        if entry is None or entry[0] != window:
            entry = self._hits[(kind, key)] = (window, entry[1] if entry else deque())
        q = entry[1]
        while q and q[0] <= now - window:
            q.popleft()
        if len(q) >= limit:
            return False
        q.append(now)
        if len(self._hits) > self._prune_at:
            self._prune(now)
        return True

    def retry_after(self, kind: str, key: str) -> int:
        """Whole seconds until ``key`` may hit again (its oldest hit leaves the window); 0 if now."""
        entry = self._hits.get((kind, key))
        if entry is None or not entry[1]:
            return 0
        window, q = entry
        return max(0, math.ceil(q[0] + window - self._clock()))

    def last(self, kind: str, key: str) -> float | None:
        entry = self._hits.get((kind, key))
        return entry[1][-1] if entry and entry[1] else None

    def _prune(self, now: float) -> None:
        for k in [k for k, (window, q) in self._hits.items() if not q or q[-1] <= now - window]:
            del self._hits[k]
        self._prune_at = max(PRUNE_AT, 2 * len(self._hits))  # never O(keys) on every call


def parse_duration(value: str) -> float:
    """``"1s"``/``"60s"``/``"1m"``/``"1h"`` (the config's Go durations) to seconds."""
    value = value.strip()
    total = 0.0
    num = ""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    i = 0
    if not value:
        raise ValueError("empty duration")
    while i < len(value):
        c = value[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = value[i:i + 2] if value[i:i + 2] in units else c
        if unit not in units or not num:
            raise ValueError(f"invalid duration {value!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise ValueError(f"invalid duration {value!r} (missing unit)")
    return total
