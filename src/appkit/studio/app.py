"""The studio's app factory: the pages from :mod:`appkit.studio.pages`, static assets, error pages and
the guards, around one :class:`~appkit.studio.target.Studio` (SDK client + database pool)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from appkit import errors
from appkit.studio.pages import Page, discover
from appkit.studio.render import render
from appkit.studio.security import Guard, is_protected
from appkit.studio.target import Studio, StudioTarget, studio_of

__all__ = ["STATIC_DIR", "create_app", "error_page", "studio_of"]

log = logging.getLogger("appkit.studio")

STATIC_DIR = Path(__file__).parent / "static"

#: the HTTP status shown for each SDK error; anything else is a 502 (the project answered badly)
_STATUS: tuple[tuple[type[errors.AppKitError], int], ...] = (
    (errors.NotFound, 404),
    (errors.ValidationError, 400),
    (errors.ConfigError, 400),
    (errors.Conflict, 409),
    (errors.PermissionDenied, 403),
    (errors.AuthError, 403),
    (errors.RateLimited, 429),
    (errors.ServiceUnavailable, 503),
)
_TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 413: "Too large", 429: "Too many requests", 500: "Server error",
           502: "Bad gateway", 503: "Unavailable"}


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", {"status": status, "title": _TITLES.get(status, "Error"),
                                          "message": message}, status=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    return error_page(request, exc.status_code, str(exc.detail or _TITLES.get(exc.status_code, "")))


async def _appkit_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.AppKitError)
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 502)
    return error_page(request, status, str(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("studio: unexpected error on %s %s", request.method, request.url.path)
    return error_page(request, 500, f"Unexpected {type(exc).__name__}; see the studio's log.")


def _check_pages(pages: list[Page]) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for page in pages:
        for route in page.routes:
            if isinstance(route, Route) and (route.methods or set()) - {"GET", "HEAD"} \
                    and not is_protected(route.endpoint):
                raise RuntimeError(f"studio page {page.name!r}: {route.path} changes state without "
                                   "@csrf_protect")
            routes.append(route)
    return routes


def create_app(target: StudioTarget, *, pages: list[Page] | None = None) -> ASGIApp:
    """The studio's ASGI app for ``target`` (every page in :mod:`appkit.studio.pages` by default)."""
    studio = Studio(target)
    chosen = [p for p in (discover() if pages is None else pages) if target.local or not p.local_only]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await studio.open()
        try:
            yield
        finally:
            await studio.close()

    async def favicon(_: Request) -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    routes = [*_check_pages(chosen), Route("/favicon.ico", favicon),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        HTTPException: _http_error, errors.AppKitError: _appkit_error, Exception: _unexpected})
    app.state.studio = studio
    app.state.pages = chosen
    return Guard(app)
