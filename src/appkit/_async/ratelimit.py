"""``app.ratelimit``: consume, check and reset token buckets through PostgREST RPC."""

from __future__ import annotations

from typing import Any

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.ratelimit.models import RateLimitResult, check_bucket, check_key


class AsyncRateLimit:
    """Token buckets keyed by name. As a user, keys are scoped to that user (``user:<uid>:<key>``
    in the database); as the service role they are used as given."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope

    async def _call(self, function: str, params: dict[str, Any]) -> Any:
        return await self._scope.rpc("appkit", function, params)

    async def _bucket_call(self, function: str, key: str, capacity: int, refill_per_second: float,
                           cost: int) -> RateLimitResult:
        capacity, refill, cost = check_bucket(capacity, refill_per_second, cost)
        data = await self._call(function, {"key": check_key(key), "capacity": capacity,
                                           "refill_per_second": refill, "cost": cost})
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse(f"{function} answered {type(data).__name__}, not an object",
                                            code="unexpected_response")
        with boundary():
            return RateLimitResult.model_validate(data)

    async def consume(self, key: str, *, capacity: int, refill_per_second: float, cost: int = 1) -> RateLimitResult:
        """Take ``cost`` tokens from the bucket if it holds them (atomic; never over-grants)."""
        return await self._bucket_call("rate_limit", key, capacity, refill_per_second, cost)

    async def check(self, key: str, *, capacity: int, refill_per_second: float, cost: int = 1) -> RateLimitResult:
        """What ``consume`` would answer now, without taking anything."""
        return await self._bucket_call("rate_limit_check", key, capacity, refill_per_second, cost)

    async def reset(self, key: str) -> int:
        """Forget every bucket of this exact (stored) key; the service role only. Returns how many."""
        data = await self._call("rate_limit_reset", {"key": check_key(key)})
        if isinstance(data, bool) or not isinstance(data, int):
            raise errors.UnexpectedResponse("rate_limit_reset answered a non-integer", code="unexpected_response")
        return data
