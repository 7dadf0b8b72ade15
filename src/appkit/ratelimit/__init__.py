"""Rate limits: atomic token buckets in Postgres (``appkit.rate_limit``), ``app.ratelimit`` in the SDK.

.. code-block:: python

    result = app.admin.ratelimit.consume(f"login:{ip}", capacity=5, refill_per_second=5 / 60)
    if not result.allowed:
        raise TooManyRequests(retry_after=result.retry_after)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.ratelimit.models import Bucket, RateLimitResult

if TYPE_CHECKING:
    from appkit._async.ratelimit import AsyncRateLimit
    from appkit._sync.ratelimit import RateLimit

__getattr__ = lazy_getattr("appkit.ratelimit", {"AsyncRateLimit": "appkit._async.ratelimit",
                                                "RateLimit": "appkit._sync.ratelimit"}, globals())

__all__ = ["AsyncRateLimit", "Bucket", "RateLimit", "RateLimitResult"]
