"""The studio's guards: loopback-only Host names, a strict Content-Security-Policy, and CSRF tokens.

* :class:`Guard` (ASGI middleware around the whole studio) answers 400 to a ``Host`` that is not a
  loopback name (a DNS-rebinding page cannot reach the console), refuses cross-site state-changing
  requests by their ``Origin``/``Sec-Fetch-Site`` headers, issues the CSRF cookie, and adds the
  security headers (CSP ``default-src 'self'`` with no inline script or style) to every response.
* CSRF is a double-submit token: a random value in an ``HttpOnly; SameSite=Strict`` cookie that every
  form repeats in its ``csrf_token`` field (htmx sends it as ``X-CSRF-Token``). :func:`csrf_protect`
  wraps every POST endpoint; :func:`appkit.studio.app.create_app` refuses to build an app with an
  unwrapped one.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "appkit_studio_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
_SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PROTECTED = "__appkit_csrf_protected__"

Endpoint = Callable[[Request], Awaitable[Response]]


def _host_name(host: str) -> str:
    if host.startswith("["):  # [::1]:54323
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            token = cookie_parser(value.decode("latin-1")).get(CSRF_COOKIE)
            if token is not None and 20 <= len(token) <= 100:
                return token
    return None


def csrf_token(request: Request) -> str:
    """The request's CSRF token (the cookie's, or the one :class:`Guard` is issuing with this response)."""
    token = request.scope.get("appkit.csrf")
    assert isinstance(token, str), "the studio app must run behind Guard"
    return token


class Guard:
    """Host check, cross-site refusal, CSRF cookie and security headers around ``app``."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: frozenset[str] = LOOPBACK_HOSTS) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
        if _host_name(host.lower()) not in self.allowed_hosts:
            await _plain(400, "The studio answers only on a loopback address (127.0.0.1 or localhost).")(
                scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS and _cross_site(headers, scope):
            await _plain(403, "Cross-site request refused.")(scope, receive, send)
            return
        token = _cookie_token(headers)
        new_cookie = token is None
        if token is None:
            token = secrets.token_urlsafe(32)
        scope["appkit.csrf"] = token

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    if name.decode() not in out:
                        out.raw.append((name, value))
                if "cache-control" not in out:
                    out["cache-control"] = "no-store"
                if new_cookie:
                    out.append("set-cookie", f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cross_site(headers: list[tuple[bytes, bytes]], scope: Scope) -> bool:
    values = {k: v.decode("latin-1") for k, v in headers if k in (b"origin", b"sec-fetch-site", b"host")}
    site = values.get(b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = values.get(b"origin")
    if origin is None or origin == "null":
        return origin == "null"
    scheme = scope.get("scheme", "http")
    return origin != f"{scheme}://{values.get(b'host', '')}"


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain; charset=utf-8")


async def check_csrf(request: Request) -> None:
    """Raise 403 unless the request repeats its CSRF cookie in the ``X-CSRF-Token`` header or the
    ``csrf_token`` form field (the form is parsed and cached on ``request`` for the endpoint)."""
    cookie = _cookie_token(list(request.scope["headers"]))
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                form = await request.form()
            except Exception:  # a malformed body is a refused request, not a 500
                raise HTTPException(400, "The form could not be read.") from None
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if cookie is None or sent is None or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise HTTPException(403, "The form's security token is missing or stale: reload the page and retry.")


def csrf_protect(endpoint: Endpoint) -> Endpoint:
    """Wrap a state-changing endpoint so it runs only with a valid CSRF token."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        if request.method not in _SAFE_METHODS:
            await check_csrf(request)
        return await endpoint(request)

    setattr(wrapper, _PROTECTED, True)
    return wrapper


def is_protected(endpoint: Any) -> bool:
    return bool(getattr(endpoint, _PROTECTED, False))
