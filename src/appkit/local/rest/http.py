"""The REST service's HTTP types: the request and response it works with, reading the body, answering errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Send

from appkit.local.jsonbody import BadJson, loads
from appkit.local.rest.errors import RestError

JSON_CT = b"application/json; charset=utf-8"
MAX_BODY = 100 * 1024 * 1024
Streamer = Callable[[Send, bool], Awaitable[None]]


@dataclass
class RestRequest:
    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    prefer_raw: list[str]
    body: bytes = b""


@dataclass
class RestResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: bytes | None = JSON_CT
    stream: Streamer | None = None


def error_response(err: RestError) -> RestResponse:
    return RestResponse(err.status, err.body(), dict(err.headers))


async def send_error(send: Send, err: RestError) -> None:
    body = err.body()
    headers = [(b"content-type", JSON_CT), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and len(length) <= 18 \
            and int(length) > MAX_BODY:
        raise RestError(413, "PGRST413", "Payload Too Large",
                       details=f"The request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY:
                raise RestError(413, "PGRST413", "Payload Too Large",
                               details=f"The request body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)


def json_body(req: RestRequest) -> Any:
    ct = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ct not in ("application/json", "", "application/vnd.pgrst.object+json", "text/plain"):
        if ct == "text/csv":
            raise RestError(415, "PGRST107", "text/csv request bodies are not supported by this server")
        raise RestError(415, "PGRST107", f"Content-Type not acceptable: {ct}")
    if not req.body.strip():
        return None
    try:
        return loads(req.body)
    except BadJson as exc:
        raise RestError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from None
