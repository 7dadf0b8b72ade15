"""HTTP helpers of the storage API: JSON in and out, body fields, draining a rejected body."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from appkit.local.jsonbody import BadJson, has_nul, loads
from appkit.local.storage import errors as E
from appkit.local.urlcheck import url_problem

log = logging.getLogger("appkit.local.storage")

MAX_DRAIN = 8 * 1024 * 1024


Handler = Callable[[Request], Awaitable[Response]]


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=json_default, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


async def read_json(request: Request, *, limit: int = 1024 * 1024) -> dict[str, Any]:
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise E.invalid_request("Request body too large")
    except ClientDisconnect:
        raise E.invalid_request("Client disconnected") from None
    if not body.strip():
        return {}
    try:
        data = loads(body)
    except BadJson as exc:
        raise E.invalid_request(f"Body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise E.invalid_request("Body must be a JSON object")
    if b"\\u0000" in body and has_nul(data):  # Postgres text cannot hold NUL
        raise E.invalid_key("names must not contain NUL characters")  # keys, prefixes and bucket ids alike
    return data


def str_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise E.StorageError(400, "InvalidRequest", f"body must have required property '{name}'", "Error")
        return None
    if not isinstance(value, str):
        raise E.invalid_request(f"body/{name} must be string")
    return value


def int_field(body: dict[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int = 100_000) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise E.invalid_request(f"body/{name} must be integer")
    try:
        number = int(value)
    except ValueError:
        raise E.invalid_request(f"body/{name} must be integer") from None
    if number < minimum:
        raise E.invalid_request(f"body/{name} must be >= {minimum}")
    return min(number, maximum)


async def drain(stream: AsyncIterator[bytes]) -> None:
    """Read (and drop) what is left of a rejected body, so the client gets the error reply cleanly."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > MAX_DRAIN:
                break
    except (ClientDisconnect, RuntimeError):
        pass


def encode_path(bucket_id: str, key: str) -> str:
    return "/".join(quote(p, safe="") for p in [bucket_id, *key.split("/")])


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def endpoint(fn: Handler, *, tus: bool = False) -> Handler:
    """``fn`` answering every error as Storage does (TUS routes in the TUS shape)."""

    async def guarded(request: Request) -> Response:
        head = request.method == "HEAD"
        try:
            problem = url_problem(request.scope)
            if problem is not None:  # a path Postgres cannot store is a bad key, as Storage says
                if "path" in problem:
                    raise E.invalid_key(request.scope.get("raw_path", b"").decode("ascii", "replace"))
                raise E.invalid_request(problem[0].upper() + problem[1:])
            return await fn(request)
        except E.StorageError as exc:
            return exc.response(tus=tus, head=head)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("storage: unexpected error on %s %s", request.method, request.url.path)
            return E.internal_error().response(tus=tus, head=head)

    return guarded
