"""Rate-limit values: what a consume/check answers, a stored bucket, and input validation."""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from appkit import errors

MAX_KEY_LENGTH = 400


class RateLimitResult(BaseModel):
    """``allowed``; ``remaining`` whole tokens; ``retry_after`` seconds until the cost is
    available again (0 when allowed, None when the bucket never refills)."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    remaining: int
    retry_after: float | None


class Bucket(BaseModel):
    """A stored token bucket (``tokens`` as of ``updated_at``; ``level`` refilled to now)."""

    model_config = ConfigDict(frozen=True)

    key: str
    capacity: int
    refill_per_second: float
    tokens: float
    level: float
    updated_at: datetime


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise errors.ValidationError(f"rate limit key must be a string of 1 to {MAX_KEY_LENGTH} characters",
                                     code="invalid_rate_limit")
    if "\x00" in key:
        raise errors.ValidationError("rate limit key must not contain NUL", code="invalid_rate_limit")
    return key


def check_bucket(capacity: object, refill_per_second: object, cost: object) -> tuple[int, float, int]:
    """Validated ``(capacity, refill_per_second, cost)`` or ``errors.ValidationError``."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 < capacity <= 2**31 - 1:
        raise errors.ValidationError("capacity must be a positive integer", code="invalid_rate_limit")
    if isinstance(refill_per_second, bool) or not isinstance(refill_per_second, (int, float)) \
            or not math.isfinite(refill_per_second) or refill_per_second < 0:
        raise errors.ValidationError("refill_per_second must be a finite number >= 0", code="invalid_rate_limit")
    if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= capacity:
        raise errors.ValidationError(f"cost must be an integer between 0 and the capacity ({capacity})",
                                     code="invalid_rate_limit")
    return capacity, float(refill_per_second), cost
