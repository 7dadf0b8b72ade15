"""The stack's one ASGI app, laid out like Supabase's API gateway.

Each service lives in its own package ``appkit.local.<name>`` (``auth``, ``rest``, ``storage``,
``realtime``) whose ``service.py`` defines ``<Name>Service`` and ``create_service(ctx)``; a
service disabled in config.toml is not imported or mounted.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from appkit.local.admission import Admission
from appkit.local.context import Service, StackContext
from appkit.local.health import RESPONDERS, DatabaseGuard
from appkit.local.observe import Observe

log = logging.getLogger("appkit.local")

#: name -> mount prefix, in Supabase's gateway layout
SERVICE_PREFIXES: dict[str, str] = {
    "auth": "/auth/v1",
    "rest": "/rest/v1",
    "storage": "/storage/v1",
    "realtime": "/realtime/v1",
}
EXPOSED_HEADERS = ["Content-Range", "Content-Location", "Location", "Range-Unit", "Preference-Applied",
                   "X-Total-Count", "X-Supabase-Api-Version", "Content-Profile", "Upload-Offset",
                   "Upload-Length", "Tus-Resumable", "ETag", "Content-Disposition", "X-Request-Id"]


def import_services(config: Any, only: str | None = None) -> list[ModuleType]:
    """The enabled service packages (imported, not instantiated), in the gateway's order."""
    return [
        importlib.import_module(f"appkit.local.{name}")
        for name in SERVICE_PREFIXES
        if (only is None or name == only) and getattr(getattr(config, name, None), "enabled", True)
    ]


def load_services(ctx: StackContext, only: str | None = None) -> list[Service]:
    return [module.create_service(ctx) for module in import_services(ctx.config, only)]


class PrefixDispatch:
    """Route by path prefix straight to each service's ASGI app.

    The child scope is what Starlette's ``Mount`` gives (``root_path`` extended by the
    prefix, ``path`` unchanged), without a router's regex matching per request — this
    sits on every request's hot path. Everything else (``/health``, 404s, lifespan)
    goes to ``fallback``.
    """

    def __init__(self, mounts: list[tuple[str, ASGIApp]], fallback: ASGIApp) -> None:
        self.mounts = mounts
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            root = scope.get("root_path", "")
            path: str = scope["path"]
            route_path = path[len(root):] if root and path.startswith(root) else path
            for prefix, app in self.mounts:
                if route_path.startswith(prefix) and (len(route_path) == len(prefix) or route_path[len(prefix)] == "/"):
                    child = dict(scope)
                    child["app_root_path"] = scope.get("app_root_path", root)
                    child["root_path"] = root + prefix
                    if len(route_path) == len(prefix):  # "/rest/v1" is "/rest/v1/"
                        child["path"] = path + "/"
                        child["raw_path"] = scope.get("raw_path", path.encode()) + b"/"
                    await app(child, receive, send)
                    return
        await self.fallback(scope, receive, send)


def build_app(ctx: StackContext, *, only: str | None = None) -> ASGIApp:
    """The gateway app; with ``only``, that one service served alone at ``/``."""
    services = load_services(ctx, only)

    async def health(_: Request) -> JSONResponse:
        names = [s.name for s in services]
        if ctx.health.up:
            return JSONResponse({"status": "ok", "services": names})
        return JSONResponse(
            {"status": "unhealthy", "services": names, "down": ["database"], "reason": ctx.health.reason},
            status_code=503, headers={"Retry-After": "1"},
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        started: list[Service] = []
        try:
            # services start concurrently (pools, schema cache, change feed): start-up time is
            # the slowest service's, not the sum
            results = await asyncio.gather(*(svc.startup() for svc in services), return_exceptions=True)
            started = [svc for svc, r in zip(services, results, strict=True) if not isinstance(r, BaseException)]
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            for svc in services:
                log.info("%s ready at %s%s", svc.name, ctx.api_url, "" if only else SERVICE_PREFIXES[svc.name])
            yield
        finally:
            for svc in reversed(started):
                try:
                    await svc.shutdown()
                    log.info("%s stopped", svc.name)
                except Exception:
                    log.exception("%s did not shut down cleanly", svc.name)
            await ctx.aclose()

    core = Starlette(routes=[Route("/health", health, methods=["GET", "HEAD"])], lifespan=lifespan)
    if only is not None:
        # one service alone at "/": it answers everything but /health
        single = services[0].app if services else core
        app: ASGIApp = _HealthFirst(core, single)
        routes = [("", RESPONDERS[services[0].name])] if services else []
    else:
        app = PrefixDispatch([(SERVICE_PREFIXES[s.name], s.app) for s in services], core)
        routes = [(SERVICE_PREFIXES[s.name], RESPONDERS[s.name]) for s in services]
    app = DatabaseGuard(app, ctx.health, routes)
    app = CORSMiddleware(
        app, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS, max_age=3600,
    )
    app = Admission(app)  # a queue in arrival order before any work, not a convoy at one pool
    return Observe(
        app, prefixes={} if only else {s.name: SERVICE_PREFIXES[s.name] for s in services},
        root=(services[0].name if services else None) if only else None,
        service_role_key=ctx.keys.service_role_key, health=ctx.health, pools=ctx.open_pools, services=services,
    )


class _HealthFirst:
    """``/health`` and lifespan go to ``core``; every other request to ``app``."""

    def __init__(self, core: ASGIApp, app: ASGIApp) -> None:
        self.core = core
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope.get("path") == "/health":
            await self.core(scope, receive, send)
        else:
            await self.app(scope, receive, send)
