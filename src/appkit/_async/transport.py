"""The one HTTP client every service of a facade shares: timeouts and retries live here.

Retries happen only for idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, or any
request carrying ``X-Appkit-Idempotent: 1``, which appkit sets on upserts) and only on
connection errors or 502/503/504 answers, with exponential backoff and full jitter.
A ``Retry-After`` header (seconds) is honoured up to the backoff cap.
"""

from __future__ import annotations

import asyncio
import random

import httpx

from appkit._resilience import IDEMPOTENT_HEADER, RetryPolicy, is_idempotent, retry_after


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and retries transient failures of idempotent requests."""

    def __init__(self, policy: RetryPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        idempotent = is_idempotent(request)
        if IDEMPOTENT_HEADER in request.headers:
            del request.headers[IDEMPOTENT_HEADER]
        attempt = 0
        while True:
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                    httpx.WriteError):
                if not idempotent or attempt >= self.policy.max_retries:
                    raise
                delay = self.policy.delay(attempt, random.random())  # noqa: S311 - jitter, not crypto
            else:
                if (not idempotent or attempt >= self.policy.max_retries
                        or response.status_code not in self.policy.retry_statuses):
                    return response
                delay = self.policy.delay(attempt, random.random(), retry_after(response))  # noqa: S311
                await response.aclose()
            attempt += 1
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_async_http_client(policy: RetryPolicy, timeout: httpx.Timeout,
                           inner: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The shared client: retrying transport, timeouts, redirects followed."""
    return httpx.AsyncClient(transport=AsyncRetryTransport(policy, inner), timeout=timeout,
                             follow_redirects=True)
