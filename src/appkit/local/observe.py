"""The gateway's observability middleware: a request id, Prometheus metrics and an
access-log line per request, and ``GET /metrics``.

:class:`Observe` wraps the whole gateway. Per request it takes the caller's
``X-Request-Id`` (when it is 1-128 characters of ``[A-Za-z0-9._:-]``) or makes one, puts
it on the response and in :data:`appkit.local.logs.request_id` (so every service's log
lines for the request share it), counts the request by service, method and status,
times it, and logs one ``appkit.local.access`` line (method, path without the query
string -- it can hold keys --, status, duration). ``/metrics`` answers the Prometheus
text format to the service-role key (``Authorization: Bearer``, ``apikey``, or HTTP
Basic ``service_role:<key>`` as Supabase's metrics endpoint takes it).
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appkit.local.health import DatabaseHealth
from appkit.local.logs import request_id

access_log = logging.getLogger("appkit.local.access")

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StackCollector(Collector):
    """Gauges read at scrape time: database health, pools, per-service gauges."""

    def __init__(self, health: DatabaseHealth, pools: Callable[[], dict[str, Any]],
                 services: Iterable[Any]) -> None:
        self.health = health
        self.pools = pools
        self.services = list(services)

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("appkit_database_up", "1 while the stack's database is up", value=int(self.health.up))
        yield CounterMetricFamily("appkit_database_restarts", "Times the stack restarted its database",
                                  value=self.health.restarts)
        yield CounterMetricFamily("appkit_database_outages", "Times the database went down", value=self.health.downs)
        size = GaugeMetricFamily("appkit_db_pool_connections", "Open connections per pool", labels=["pool"])
        idle = GaugeMetricFamily("appkit_db_pool_idle", "Idle connections per pool", labels=["pool"])
        waiting = GaugeMetricFamily("appkit_db_pool_waiting", "Requests waiting for a connection", labels=["pool"])
        limit = GaugeMetricFamily("appkit_db_pool_max", "Maximum connections per pool", labels=["pool"])
        for name, pool in self.pools().items():
            stats = pool.get_stats()
            size.add_metric([name], stats.get("pool_size", 0))
            idle.add_metric([name], stats.get("pool_available", 0))
            waiting.add_metric([name], stats.get("requests_waiting", 0))
            limit.add_metric([name], pool.max_size)
        yield from (size, idle, waiting, limit)
        for svc in self.services:
            gauges = getattr(svc, "gauges", None)
            if gauges is None:
                continue
            for key, (doc, value) in gauges().items():
                yield GaugeMetricFamily(f"appkit_{svc.name}_{key}", doc, value=value)


class Observe:
    """Request ids, metrics, access log and ``/metrics`` around the gateway ``app``."""

    def __init__(
        self, app: ASGIApp, *, prefixes: dict[str, str], service_role_key: str, health: DatabaseHealth,
        pools: Callable[[], dict[str, Any]], services: Iterable[Any], root: str | None = None,
    ) -> None:
        self.app = app
        #: (prefix, service) longest first; ``root`` names the service served alone at "/"
        self.prefixes = sorted(((p, n) for n, p in prefixes.items()), key=lambda x: -len(x[0]))
        self.root = root
        self.key = service_role_key.encode()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("appkit_http_requests", "HTTP requests answered", ["service", "method", "status"],
                                registry=self.registry)
        self.errors = Counter("appkit_http_errors", "HTTP requests answered 4xx or 5xx", ["service", "class"],
                              registry=self.registry)
        self.latency = Histogram("appkit_http_request_duration_seconds", "Time to the end of the response",
                                 ["service"], buckets=BUCKETS, registry=self.registry)
        self.in_progress = Gauge("appkit_http_requests_in_progress", "Requests being handled", ["service"],
                                 registry=self.registry)
        self.websockets = Gauge("appkit_websocket_connections", "Open WebSocket connections", ["service"],
                                registry=self.registry)
        self.registry.register(_StackCollector(health, pools, services))
        self._counters: dict[tuple[str, str, int], Any] = {}

    def _service(self, path: str) -> str:
        for prefix, name in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return name
        return self.root or "gateway"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if kind == "http" and path == "/metrics":
            await self._metrics(scope, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        service = self._service(path)
        if kind == "websocket":
            gauge = self.websockets.labels(service)
            gauge.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                gauge.dec()
                request_id.reset(token)
            return
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        progress = self.in_progress.labels(service)
        progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            progress.dec()
            elapsed = time.perf_counter() - started
            method: str = scope["method"]
            self._count(service, method, status)
            self.latency.labels(service).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %d %.1fms", method, path, status, elapsed * 1000, extra={
                    "service": service, "method": method, "path": path, "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                })
            request_id.reset(token)

    def _count(self, service: str, method: str, status: int) -> None:
        key = (service, method, status)
        counter = self._counters.get(key)
        if counter is None:
            if len(self._counters) > 2000:  # methods are client-chosen: bound the label sets
                key = (service, "OTHER", status)
            counter = self._counters.setdefault(key, self.requests.labels(*key))
        counter.inc()
        if status >= 400:
            self.errors.labels(service, "5xx" if status >= 500 else "4xx").inc()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"apikey":
                candidate = value
            elif name == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    candidate = rest.strip()
                elif scheme.lower() == b"basic":
                    try:
                        user, _, candidate = base64.b64decode(rest.strip(), validate=True).partition(b":")
                    except ValueError:
                        continue
                    if user != b"service_role":
                        continue
                else:
                    continue
            else:
                continue
            if hmac.compare_digest(candidate, self.key):
                return True
        return False

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            status, headers, body = 405, [(b"allow", b"GET, HEAD")], b"Method Not Allowed"
        elif not self._authorized(scope):
            status, headers, body = 401, [(b"www-authenticate", b'Basic realm="metrics"')], b"Unauthorized"
        else:
            status, headers, body = 200, [(b"content-type", _CONTENT_TYPE)], generate_latest(self.registry)
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _ID_RE.fullmatch(text) else None
    return None
