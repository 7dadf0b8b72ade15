"""In-memory rate limits shaped like Supabase Auth's ``[auth.rate_limit]`` settings.

Each limit is a sliding-window counter per key (client IP, e-mail address, or the
whole instance for ``email_sent``/``sms_sent``, which Supabase counts per project).
"""

from __future__ import annotations

import time
from collections import deque


class Limiter:
    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def allow(self, kind: str, key: str, limit: int, window: float) -> bool:
        """Record one hit; False (and nothing recorded) when ``limit`` hits happened in ``window`` s."""
        now = time.monotonic()
        q = self._hits.setdefault((kind, key), deque())
        while q and q[0] <= now - window:
            q.popleft()
        if len(q) >= limit:
            return False
        q.append(now)
        if len(self._hits) > 100_000:
            self._prune(now, window)
        return True

    def last(self, kind: str, key: str) -> float | None:
        q = self._hits.get((kind, key))
        return q[-1] if q else None

    def _prune(self, now: float, window: float) -> None:
        for k in [k for k, q in self._hits.items() if not q or q[-1] <= now - window]:
            del self._hits[k]


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
