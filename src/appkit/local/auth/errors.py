"""GoTrue's error responses.

Supabase Auth answers errors in one of two shapes, chosen by the request's
``X-Supabase-Api-Version`` header: from ``2024-01-01`` on ``{"code": "<error_code>",
"message": "..."}``, before (or without the header) ``{"code": <status>, "error_code":
"<error_code>", "msg": "..."}``. Every response carries ``X-Supabase-Api-Version``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
_VERSION_RE = re.compile(r"^2[0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


class GoTrueError(Exception):
    """An error answered to the client with GoTrue's status, ``error_code`` and message."""

    def __init__(self, status: int, error_code: str, msg: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(msg)
        self.status = status
        self.error_code = error_code
        self.msg = msg
        self.headers = headers or {}
        self.extra = extra


class OAuthError(Exception):
    """The OAuth2-style error some ``/token`` and redirect failures use."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def bad_request(code: str, msg: str, **extra: Any) -> GoTrueError:
    return GoTrueError(400, code, msg, **extra)


def unprocessable(code: str, msg: str, **extra: Any) -> GoTrueError:
    return GoTrueError(422, code, msg, **extra)


def forbidden(code: str, msg: str) -> GoTrueError:
    return GoTrueError(403, code, msg)


def unauthorized(code: str, msg: str) -> GoTrueError:
    return GoTrueError(401, code, msg)


def not_found(code: str, msg: str) -> GoTrueError:
    return GoTrueError(404, code, msg)


def too_many(code: str, msg: str, retry_after: int | None = None) -> GoTrueError:
    """429; with ``retry_after`` seconds in a ``Retry-After`` header (at least 1)."""
    headers = {"Retry-After": str(max(1, retry_after))} if retry_after is not None else None
    return GoTrueError(429, code, msg, headers=headers)


def uses_new_shape(request: Request) -> bool:
    version = request.headers.get(API_VERSION_HEADER, "")
    return bool(_VERSION_RE.match(version)) and version >= API_VERSION


def error_response(request: Request, err: GoTrueError) -> JSONResponse:
    body: dict[str, Any]
    if uses_new_shape(request):
        body = {"code": err.error_code, "message": err.msg}
    else:
        body = {"code": err.status, "error_code": err.error_code, "msg": err.msg}
    body.update(err.extra)
    return JSONResponse(body, status_code=err.status, headers={**err.headers, API_VERSION_HEADER: API_VERSION})


def oauth_error_response(err: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": err.error, "error_description": err.description},
        status_code=err.status, headers={API_VERSION_HEADER: API_VERSION},
    )
