"""Auth hooks: GoTrue's extensibility points, run as a Postgres function or a signed HTTP call.

``[auth.hook.<name>] enabled = true`` with ``uri = "pg-functions://postgres/<schema>/<fn>"``
calls ``"<schema>"."<fn>"(payload jsonb)`` on the auth service's own connection (role
``supabase_auth_admin``, inside the request's transaction, ``statement_timeout`` 2 s), as
GoTrue does; an ``http(s)://`` URI gets a POST signed with Standard Webhooks headers
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` with each of ``secrets``),
5 s timeout, 3 attempts 2 s apart on connection errors. Either answers JSON; an
``{"error": {"http_code", "message"}}`` answer becomes that HTTP error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from appkit.local.auth.errors import GoTrueError
from appkit.local.auth.users import Conn
from appkit.local.config import AuthHookConfig, AuthHooksConfig

log = logging.getLogger("appkit.local.auth.hooks")

PG_TIMEOUT_MS = 2000
HTTP_TIMEOUT = 5.0
HTTP_RETRIES = 3
HTTP_BACKOFF = 2.0
PAYLOAD_LIMIT = 200 * 1024

#: GoTrue's names for the hooks in payload metadata
METADATA_NAMES = {
    "custom_access_token": "customize-access-token", "before_user_created": "before-user-created",
    "password_verification_attempt": "password-verification", "mfa_verification_attempt": "mfa-verification",
    "send_email": "send-email", "send_sms": "send-sms",
}


def metadata(name: str, ip: str | None) -> dict[str, Any]:
    """GoTrue's ``metadata`` member of every hook payload."""
    meta: dict[str, Any] = {"uuid": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat(),
                            "name": METADATA_NAMES[name]}
    if ip:
        meta["ip_address"] = ip
    return meta


def hook_error(answer: Any) -> GoTrueError | None:
    """The error an answer asks for (``{"error": {"http_code", "message"}}`` with a message)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        return None
    message = answer["error"].get("message")
    if not isinstance(message, str) or not message:
        return None
    code = answer["error"].get("http_code")
    status = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else 500
    return GoTrueError(status, "unexpected_failure" if status == 500 else "unknown", message)


def sign_payload(secrets: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks' ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per secret."""
    signatures = []
    for secret in secrets.split("|"):
        key = base64.b64decode(secret.removeprefix("v1,").removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(mac).decode())
    return " ".join(signatures)


class Hooks:
    """Calls the configured hooks; one instance per auth service."""

    def __init__(self, cfg: AuthHooksConfig, *, backoff: float = HTTP_BACKOFF, timeout: float = HTTP_TIMEOUT) -> None:
        self.cfg = cfg
        self.backoff = backoff
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    def enabled(self, name: str) -> bool:
        return self.cfg.get(name).enabled

    async def invoke(self, name: str, payload: dict[str, Any], conn: Conn) -> dict[str, Any]:
        """Run hook ``name`` with ``payload``; its JSON answer (``{}`` for none), or GoTrueError."""
        hook = self.cfg.get(name)
        if urlsplit(hook.uri).scheme.lower() == "pg-functions":
            answer = await self._pg(hook, payload, conn)
        else:
            answer = await self._http_call(hook, payload)
        err = hook_error(answer)
        if err is not None:
            raise err
        if answer is None:
            return {}
        if not isinstance(answer, dict):
            raise GoTrueError(500, "unexpected_failure", "Error unmarshaling JSON output.")
        return answer

    async def _pg(self, hook: AuthHookConfig, payload: dict[str, Any], conn: Conn) -> Any:
        parts = urlsplit(hook.uri).path.split("/")
        call = sql.SQL("select {}.{}(%s)").format(sql.Identifier(parts[1]), sql.Identifier(parts[2]))
        try:
            async with conn.transaction():  # a savepoint inside the request's transaction
                await conn.execute(sql.SQL("set local statement_timeout to {}").format(sql.Literal(PG_TIMEOUT_MS)))
                cur = await conn.execute(call, (Jsonb(payload),))
                row = await cur.fetchone()
                await conn.execute("set local statement_timeout to default")
        except psycopg.Error as exc:
            log.warning("auth hook %s failed: %s", hook.uri, exc.diag.message_primary or type(exc).__name__)
            raise GoTrueError(500, "unexpected_failure", f"Error running hook URI: {hook.uri}") from None
        value = row[0] if row else None
        if isinstance(value, str):  # a function returning json text
            try:
                return json.loads(value)
            except ValueError:
                raise GoTrueError(500, "unexpected_failure", "Error unmarshaling JSON output.") from None
        return value

    async def _http_call(self, hook: AuthHookConfig, payload: dict[str, Any]) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        body = json.dumps(payload, separators=(",", ":")).encode()
        deadline = time.monotonic() + self.timeout  # one budget for every attempt, as GoTrue's context
        for attempt in range(HTTP_RETRIES):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout()
            msg_id = str(uuid.uuid4())
            now = int(time.time())
            headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "webhook-id": msg_id,
                       "webhook-timestamp": str(now),
                       "webhook-signature": sign_payload(hook.secrets, msg_id, now, body)}
            try:
                async with self._http.stream("POST", hook.uri, content=body, headers=headers,
                                             timeout=remaining) as rsp:
                    return await self._answer(rsp)
            except httpx.TimeoutException:
                raise self._timeout() from None
            except httpx.TransportError:
                if attempt == HTTP_RETRIES - 1:
                    raise GoTrueError(422, "hook_timeout_after_retry",
                                   "Failed to reach hook after maximum retries") from None
                if deadline - time.monotonic() <= self.backoff:
                    raise self._timeout() from None
                await asyncio.sleep(self.backoff)
            except _Retry:
                continue
        raise GoTrueError(500, "unexpected_failure", "Service currently unavailable due to hook")

    def _timeout(self) -> GoTrueError:
        return GoTrueError(422, "hook_timeout", f"Failed to reach hook within maximum time of {self.timeout:f} seconds")

    async def _answer(self, rsp: httpx.Response) -> Any:
        status = rsp.status_code
        if status == 204:
            return None
        if status in (200, 202):
            content_type = rsp.headers.get("content-type")
            if not content_type:
                raise GoTrueError(400, "hook_payload_invalid_content_type",
                               "Invalid Content-Type: Missing Content-Type header")
            if content_type.split(";")[0].strip().lower() != "application/json":
                raise GoTrueError(400, "hook_payload_invalid_content_type",
                               f"Invalid JSON response. Received content-type: {content_type}")
            data = b""
            async for chunk in rsp.aiter_bytes():
                data += chunk
                if len(data) > PAYLOAD_LIMIT:
                    raise GoTrueError(422, "hook_payload_over_size_limit",
                                   f"Payload size exceeded size limit of {PAYLOAD_LIMIT} bytes")
            try:
                return json.loads(data) if data else None
            except ValueError:
                raise GoTrueError(500, "unexpected_failure", "Error unmarshaling JSON output.") from None
        if status in (429, 503):
            if rsp.headers.get("retry-after"):
                raise _Retry
            raise GoTrueError(500, "unexpected_failure", "Service currently unavailable due to hook")
        if status == 400:
            raise GoTrueError(500, "unexpected_failure", "Invalid payload sent to hook")
        if status == 401:
            raise GoTrueError(500, "unexpected_failure", "Hook requires authorization token")
        raise GoTrueError(500, "unexpected_failure", f"Unexpected status code returned from hook: {status}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class _Retry(Exception):
    """A 429/503 answer with ``Retry-After``: GoTrue tries again at once."""


# -- custom_access_token: the output claims GoTrue accepts ------------------------------------------

#: GoTrue's MinimumViableTokenSchema: the claim types, and the claims that must be present
_CLAIM_TYPES: dict[str, tuple[str, ...]] = {
    "aud": ("string", "array"), "exp": ("integer",), "jti": ("string",), "iat": ("integer",), "iss": ("string",),
    "nbf": ("integer",), "sub": ("string",), "email": ("string",), "phone": ("string",),
    "app_metadata": ("object",), "user_metadata": ("object",), "role": ("string",), "aal": ("string",),
    "amr": ("array",), "session_id": ("string",), "client_id": ("string",),
}
REQUIRED_CLAIMS = ("aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def access_token_claims(answer: dict[str, Any]) -> dict[str, Any]:
    """The claims a custom_access_token hook answered, checked as GoTrue checks them."""
    if "claims" not in answer:
        raise GoTrueError(500, "unexpected_failure", "output claims field is missing")
    claims = answer["claims"]
    if not isinstance(claims, dict):
        raise GoTrueError(500, "unexpected_failure", "Error unmarshaling JSON output.")
    problems = [f"(root): {name} is required" for name in REQUIRED_CLAIMS if name not in claims]
    for name, allowed in _CLAIM_TYPES.items():
        if name in claims:
            given = _json_type(claims[name])
            if given not in allowed:
                expected = ", ".join(allowed)
                problems.append(f"{name}: Invalid type. Expected: {expected}, given: {given}")
    amr = claims.get("amr")
    if isinstance(amr, list):
        for i, item in enumerate(amr):
            if not isinstance(item, str | dict):
                problems.append(f"amr.{i}: Must validate at least one schema (anyOf)")
    if problems:
        raise GoTrueError(500, "unexpected_failure", "output claims do not conform to the expected schema: \n"
                       + "".join(f"- {p}\n" for p in problems))
    return claims
