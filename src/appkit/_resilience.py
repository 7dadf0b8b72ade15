"""Retry policy shared by the async and the generated sync transports."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: request header appkit sets on calls that are idempotent although not by their method
#: (upserts); the transport strips it before sending.
IDEMPOTENT_HEADER = "x-appkit-idempotent"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({502, 503, 504}))

    def delay(self, attempt: int, jitter: float, server_hint: float | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]; a server hint wins (capped)."""
        if server_hint is not None:
            return min(self.max_backoff, max(0.0, server_hint))
        return float(jitter * min(self.max_backoff, self.backoff * (2.0**attempt)))


def is_idempotent(request: httpx.Request) -> bool:
    return request.method.upper() in IDEMPOTENT_METHODS or request.headers.get(IDEMPOTENT_HEADER) == "1"


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
