"""The stack's one ASGI app, laid out like Supabase's API gateway.

Each service lives in its own package ``appkit.local.<name>`` exposing
``create_service(ctx)``; packages that are not there (or disabled in config.toml) are
simply not mounted, so the gateway grows as services land.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from appkit.local.context import Service, StackContext

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
                   "Upload-Length", "Tus-Resumable", "ETag"]


def _enabled(ctx: StackContext, name: str) -> bool:
    section = getattr(ctx.config, name, None)
    return bool(getattr(section, "enabled", True))


def load_services(ctx: StackContext, only: str | None = None) -> list[Service]:
    services: list[Service] = []
    for name in SERVICE_PREFIXES:
        if only is not None and name != only:
            continue
        module_name = f"appkit.local.{name}"
        if importlib.util.find_spec(module_name) is None or not _enabled(ctx, name):
            continue
        module = importlib.import_module(module_name)
        factory = getattr(module, "create_service", None)
        if factory is None:
            continue
        services.append(factory(ctx))
    return services


def build_app(ctx: StackContext, *, only: str | None = None) -> Starlette:
    """The gateway app; with ``only``, that one service served alone at ``/``."""
    services = load_services(ctx, only)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "services": [s.name for s in services]})

    routes: list[BaseRoute] = [Route("/health", health, methods=["GET", "HEAD"])]
    for svc in services:
        prefix = "" if only else SERVICE_PREFIXES[svc.name]
        routes.append(Mount(prefix or "/", app=svc.app))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        started: list[Service] = []
        try:
            for svc in services:
                await svc.startup()
                started.append(svc)
                log.info("%s ready at %s%s", svc.name, ctx.api_url, "" if only else SERVICE_PREFIXES[svc.name])
            yield
        finally:
            for svc in reversed(started):
                try:
                    await svc.shutdown()
                except Exception:
                    log.exception("%s did not shut down cleanly", svc.name)
            await ctx.aclose()

    middleware = [
        Middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS, max_age=3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
