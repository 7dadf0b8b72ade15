"""HTTP auth hooks against a real local HTTP server: Standard Webhooks signatures, GoTrue's
answers to each status, content type, size, timeout and retry case; hook config checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appkit.errors import ConfigError
from appkit.local.auth.errors import GoTrueError
from appkit.local.auth.hooks import PAYLOAD_LIMIT, Hooks, hook_error
from appkit.local.config import AuthHooksConfig, load_config
from tests.support import free_port

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "v1,whsec_" + base64.b64encode(KEY).decode()
OTHER = "v1,whsec_" + base64.b64encode(b"another-key-another-key-another-k").decode()
SEEN: list[dict[str, Any]] = []
ATTEMPTS: dict[str, int] = {}


async def endpoint(request: Request) -> Response:
    mode = request.path_params["mode"]
    body = await request.body()
    SEEN.append({"mode": mode, "headers": dict(request.headers), "body": body})
    ATTEMPTS[mode] = ATTEMPTS.get(mode, 0) + 1
    if mode == "ok":
        return JSONResponse({"claims": {"answer": 42}})
    if mode == "empty":
        return Response(status_code=204)
    if mode == "error":
        return JSONResponse({"error": {"http_code": 429, "message": "slow down"}})
    if mode == "text":
        return Response("hi", media_type="text/plain")
    if mode == "notype":
        return Response(b"{}", headers={"content-type": ""})
    if mode == "big":
        return Response(b'{"x":"' + b"a" * (PAYLOAD_LIMIT + 10) + b'"}', media_type="application/json")
    if mode == "notjson":
        return Response(b"{nope", media_type="application/json")
    if mode == "slow":
        await asyncio.sleep(2)
        return JSONResponse({})
    if mode == "retry" and ATTEMPTS[mode] == 1:
        return Response(status_code=503, headers={"retry-after": "1"})
    if mode == "retry":
        return JSONResponse({"claims": {"second": True}})
    return Response(status_code=int(mode))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/{mode}", endpoint, methods=["POST"])])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


def hooks(uri: str, secrets: str = SECRET, **kw: Any) -> Hooks:
    cfg = AuthHooksConfig.model_validate({"custom_access_token": {"enabled": True, "uri": uri, "secrets": secrets}})
    return Hooks(cfg, **kw)


def call(h: Hooks, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        try:
            return await h.invoke("custom_access_token", payload or {"user_id": "u"}, cast(Any, None))
        finally:
            await h.close()
    return asyncio.run(run())


def test_payload_is_signed_with_every_secret(server: str) -> None:
    SEEN.clear()
    assert call(hooks(f"{server}/ok", f"{SECRET}|{OTHER}"), {"user_id": "abc"}) == {"claims": {"answer": 42}}
    seen = SEEN[-1]
    headers, body = seen["headers"], seen["body"]
    assert json.loads(body) == {"user_id": "abc"} and headers["content-type"] == "application/json"
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = [base64.b64encode(hmac.new(k, content, hashlib.sha256).digest()).decode()
                for k in (KEY, b"another-key-another-key-another-k")]
    assert headers["webhook-signature"].split(" ") == [f"v1,{e}" for e in expected]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5


def test_204_is_an_empty_answer(server: str) -> None:
    assert call(hooks(f"{server}/empty")) == {}


@pytest.mark.parametrize(("mode", "status", "code", "fragment"), [
    ("error", 429, "unknown", "slow down"),
    ("text", 400, "hook_payload_invalid_content_type", "Received content-type: text/plain"),
    ("notype", 400, "hook_payload_invalid_content_type", "Missing Content-Type header"),
    ("big", 422, "hook_payload_over_size_limit", "Payload size exceeded size limit"),
    ("notjson", 500, "unexpected_failure", "Error unmarshaling JSON output."),
    ("400", 500, "unexpected_failure", "Invalid payload sent to hook"),
    ("401", 500, "unexpected_failure", "Hook requires authorization token"),
    ("503", 500, "unexpected_failure", "Service currently unavailable due to hook"),
    ("418", 500, "unexpected_failure", "Unexpected status code returned from hook: 418"),
])
def test_answers_map_to_gotrue_errors(server: str, mode: str, status: int, code: str, fragment: str) -> None:
    with pytest.raises(GoTrueError) as info:
        call(hooks(f"{server}/{mode}"))
    assert (info.value.status, info.value.error_code) == (status, code)
    assert fragment in info.value.msg


def test_retry_after_is_tried_again(server: str) -> None:
    ATTEMPTS.pop("retry", None)
    assert call(hooks(f"{server}/retry")) == {"claims": {"second": True}}
    assert ATTEMPTS["retry"] == 2


def test_timeout_is_hook_timeout(server: str) -> None:
    with pytest.raises(GoTrueError) as info:
        call(hooks(f"{server}/slow", timeout=0.5))
    assert (info.value.status, info.value.error_code) == (422, "hook_timeout")


def test_unreachable_hook_is_retried_then_refused() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(GoTrueError) as info:
        call(hooks(f"http://127.0.0.1:{port}/x", backoff=0.05))
    assert (info.value.status, info.value.error_code) == (422, "hook_timeout_after_retry")
    assert time.monotonic() - started >= 0.1  # two backoffs between three attempts


@pytest.mark.parametrize("answer", [None, [], "x", {"error": "x"}, {"error": {"message": ""}}, {"claims": {}}])
def test_answers_that_are_no_error(answer: Any) -> None:
    assert hook_error(answer) is None


@pytest.mark.parametrize(("hook", "fragment"), [
    ('enabled = true', "custom_access_token.uri"),
    ('enabled = true\nuri = "ftp://x"', "should be a HTTP, HTTPS, or pg-functions URI"),
    ('enabled = true\nuri = "https://hooks.example.com/x"', "custom_access_token.secrets"),
    ('enabled = true\nuri = "https://hooks.example.com/x"\nsecrets = "whsec_abc"', 'formatted as "v1,whsec_'),
    (f'enabled = true\nuri = "http://hooks.example.com/x"\nsecrets = "{SECRET}"', "only localhost"),
    (f'enabled = true\nuri = "pg-functions://postgres/public/fn"\nsecrets = "{SECRET}"', "unsupported for pg-functions"),
    ('enabled = true\nuri = "pg-functions://postgres/public"', "not contain enough parts"),
    ('enabled = true\nuri = "pg-functions://postgres/pub-lic/fn"', "invalid schema name"),
    ('enabled = true\nuri = "pg-functions://postgres/public/fn;drop"', "invalid function name"),
    ('enabled = true\nuri = "https://h.example.com/x"\nsecrets = "env(APPKIT_T_HOOK_SECRET)"', "APPKIT_T_HOOK_SECRET"),
])
def test_bad_hook_config_is_one_clear_error(tmp_path: Any, hook: str, fragment: str) -> None:
    (tmp_path / "config.toml").write_text(f"[auth.hook.custom_access_token]\n{hook}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_disabled_hook_is_not_checked(tmp_path: Any) -> None:
    (tmp_path / "config.toml").write_text('[auth.hook.send_sms]\nenabled = false\nuri = "ftp://x"\n')
    assert not load_config(tmp_path / "config.toml").auth.hook.send_sms.enabled
