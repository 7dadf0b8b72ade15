"""The auth service's HTTP layer: the request wrapper, exact-path routing and the error boundary."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from appkit.local.auth.errors import (
    API_VERSION,
    API_VERSION_HEADER,
    GoTrueError,
    OAuthError,
    bad_request,
    error_response,
    oauth_error_response,
    unprocessable,
)
from appkit.local.auth.inputs import client_ip, json_body
from appkit.local.urlcheck import url_problem

log = logging.getLogger("appkit.local.auth")

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class AuthRequest:
    request: Request
    body: dict[str, Any]
    ip: str | None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")


Handler = Callable[[AuthRequest], Awaitable[Response]]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json",
                    headers=headers)


class ExactRoutes:
    """ASGI: a request for a path without parameters goes straight to its endpoint (one dict
    lookup, no router, no middleware: the endpoints answer every error themselves); any
    other request (path parameters, HEAD, a wrong method's 405) to ``app``."""

    def __init__(self, exact: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]], app: ASGIApp) -> None:
        self.exact = exact
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            endpoint = self.exact.get((scope["method"], path))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error_boundary(path: str, handler: Handler, check_apikey: Callable[[Request], Response | None] | None) -> Endpoint:
    """``handler`` as a Starlette endpoint: the API key checked first (unless ``check_apikey``
    is None: an open path), the JSON body parsed, and every error answered as GoTrue does."""

    async def endpoint(request: Request) -> Response:
        try:
            problem = url_problem(request.scope)
            if problem is not None:
                raise bad_request("validation_failed", problem[0].upper() + problem[1:])
            if check_apikey is not None:
                denied = check_apikey(request)
                if denied is not None:
                    return denied
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                body = json_body(await request.body())
            host = request.client.host if request.client else None
            response = await handler(AuthRequest(request, body, client_ip(host)))
        except GoTrueError as err:
            return error_response(request, err)
        except OAuthError as err:
            return oauth_error_response(err)
        except psycopg.errors.UniqueViolation as exc:
            log.info("auth: unique violation: %s", exc.diag.constraint_name)
            return error_response(request, unprocessable("conflict", "The resource already exists"))
        except psycopg.Error as exc:
            log.exception("auth: database error")
            msg = "Database error" + (f": {exc.diag.message_primary}" if exc.diag.message_primary else "")
            return error_response(request, GoTrueError(500, "unexpected_failure", msg))
        except Exception:
            log.exception("auth: unexpected error on %s %s", request.method, path)
            return error_response(request, GoTrueError(500, "unexpected_failure", "Unexpected failure"))
        response.headers[API_VERSION_HEADER] = API_VERSION
        return response

    return endpoint
