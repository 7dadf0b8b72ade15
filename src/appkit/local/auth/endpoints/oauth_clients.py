"""The OAuth 2.1 server's admin API (``/admin/oauth/clients``), with GoTrue's rules and answers.

Behind ``[auth.oauth_server] enabled`` (else 404 ``feature_disabled``). Clients live in
``auth.oauth_clients``; a confidential client's secret is shown once (on registration and
regeneration) and stored as its SHA-256; deletion is soft (``deleted_at``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from psycopg.rows import dict_row
from starlette.responses import Response

from appkit.local.auth.endpoints.base import EndpointBase
from appkit.local.auth.errors import bad_request, not_found
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import is_uuid
from appkit.local.auth.users import Conn

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")
_DANGEROUS_SCHEMES = ("javascript", "data", "file", "vbscript", "about", "blob")
_COLUMNS = ("id, client_secret_hash, registration_type, redirect_uris, grant_types, client_name, client_uri,"
            " logo_uri, created_at, updated_at, client_type, token_endpoint_auth_method")


class _Invalid(Exception):
    """A parameter GoTrue's validation refuses (its message)."""


def _go_list(values: tuple[str, ...]) -> str:
    return "[" + " ".join(values) + "]"  # Go's %v of a []string


def _redirect_uri_problem(uri: str) -> str | None:
    if uri == "":
        return "redirect URI cannot be empty"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "invalid URL format"
    if not parts.scheme or not parts.netloc:
        return "must have scheme and host"
    if parts.scheme.lower() in _DANGEROUS_SCHEMES:
        return f"scheme '{parts.scheme}' is not allowed for security reasons"
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        return "HTTP scheme only allowed for localhost"
    if parts.fragment:
        return "fragment not allowed in redirect URI"
    return None


def _check_redirect_uris(uris: list[str] | None, *, required: bool) -> None:
    if uris is None:
        if required:
            raise _Invalid("redirect_uris is required")
        return
    if not uris:
        raise _Invalid("redirect_uris cannot be empty")
    if len(uris) > 10:
        raise _Invalid("redirect_uris cannot exceed 10 items")
    for uri in uris:
        problem = _redirect_uri_problem(uri)
        if problem:
            raise _Invalid(f"invalid redirect_uri '{uri}': {problem}")


def _check_grant_types(grants: list[str]) -> None:
    if not grants:
        raise _Invalid("grant_types cannot be empty")
    if any(g not in GRANT_TYPES for g in grants):
        raise _Invalid("grant_types must only contain 'authorization_code' and/or 'refresh_token'")


def _check_uri(name: str, value: str | None) -> None:
    if not value:
        return
    if len(value) > 2048:
        raise _Invalid(f"{name} cannot exceed 2048 characters")
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path.startswith("/")):
        raise _Invalid(f"{name} must be a valid URL")


def _check_name(value: str | None) -> None:
    if value is not None and len(value) > 1024:
        raise _Invalid("client_name cannot exceed 1024 characters")


def _client_type_of(method: str) -> str:
    return "public" if method == "none" else "confidential"


def _field(body: dict[str, Any], key: str, kind: type) -> Any:
    """A JSON member of the expected type; anything else is GoTrue's ``Invalid JSON body``."""
    value = body.get(key)
    if value is None:
        return None
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request("bad_json", "Invalid JSON body")
    elif not isinstance(value, kind):
        raise bad_request("bad_json", "Invalid JSON body")
    return value


def _new_secret() -> tuple[str, str]:
    plain = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(plain.encode()).digest()).rstrip(b"=").decode()
    return plain, digest


def _go_time(value: datetime) -> str:
    """Go's RFC 3339 with nanoseconds, trailing zeros dropped (``time.Time`` in JSON)."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def client_json(row: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    """GoTrue's OAuthServerClientResponse (empty members omitted, as its ``omitempty`` tags)."""
    out: dict[str, Any] = {"client_id": str(row["id"])}
    if secret:
        out["client_secret"] = secret
    out["client_type"] = row["client_type"]
    if row["redirect_uris"]:
        out["redirect_uris"] = list(row["redirect_uris"])
    out["token_endpoint_auth_method"] = row["token_endpoint_auth_method"]
    if row["grant_types"]:
        out["grant_types"] = list(row["grant_types"])
    out["response_types"] = ["code"]
    for key in ("client_name", "client_uri", "logo_uri"):
        if row[key]:
            out[key] = row[key]
    out["registration_type"] = row["registration_type"]
    out["created_at"] = _go_time(row["created_at"])
    out["updated_at"] = _go_time(row["updated_at"])
    return out


class OAuthClientEndpoints(EndpointBase):
    """``/admin/oauth/clients`` and ``/admin/oauth/clients/{client_id}[/regenerate_secret]``."""

    def _oauth_admin(self, req: AuthRequest) -> None:
        self._require_admin(req)
        if not self.cfg.oauth_server.enabled:
            raise not_found("feature_disabled", "OAuth server is disabled")

    async def _load_client(self, conn: Conn, req: AuthRequest) -> dict[str, Any]:
        client_id = req.request.path_params["client_id"]
        if not is_uuid(client_id):
            raise bad_request("validation_failed", "invalid client_id format")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"select {_COLUMNS} from auth.oauth_clients where id = %s and deleted_at is null"
                              " for update", (client_id,))
            row = await cur.fetchone()
        if row is None:
            raise not_found("oauth_client_not_found", "OAuth client not found")
        return row

    async def oauth_clients(self, req: AuthRequest) -> Response:
        self._oauth_admin(req)
        if req.request.method == "GET":
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(f"select {_COLUMNS} from auth.oauth_clients where deleted_at is null"
                                  " order by created_at desc")
                rows = await cur.fetchall()
            return ok({"clients": [client_json(r) for r in rows]} if rows else {})
        return await self._register(req)

    async def _register(self, req: AuthRequest) -> Response:
        body = req.body
        uris = _field(body, "redirect_uris", list)
        client_type = _field(body, "client_type", str) or ""
        method = _field(body, "token_endpoint_auth_method", str) or ""
        grants = _field(body, "grant_types", list) or []
        name = _field(body, "client_name", str)
        client_uri = _field(body, "client_uri", str)
        logo_uri = _field(body, "logo_uri", str)
        try:
            _check_redirect_uris(uris, required=True)
            if grants:
                _check_grant_types(grants)
            _check_name(name)
            _check_uri("client_uri", client_uri)
            _check_uri("logo_uri", logo_uri)
            if client_type and client_type not in ("public", "confidential"):
                raise _Invalid("client_type must be 'public' or 'confidential'")
            if method and method not in AUTH_METHODS:
                raise _Invalid(f"token_endpoint_auth_method must be one of: {_go_list(AUTH_METHODS)}")
            if client_type and method and _client_type_of(method) != client_type:
                raise _Invalid(f"client_type '{client_type}' is inconsistent with token_endpoint_auth_method"
                               f" '{method}' (expected client_type '{_client_type_of(method)}')")
        except _Invalid as exc:
            # GoTrue wraps the validation error once more: its message carries the inner status
            raise bad_request("validation_failed", f"400: {exc}") from None
        client_type = client_type or (_client_type_of(method) if method else "confidential")
        method = method or ("none" if client_type == "public" else "client_secret_basic")
        plain, digest = _new_secret() if client_type == "confidential" else (None, None)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "insert into auth.oauth_clients (id, client_secret_hash, registration_type, redirect_uris,"
                " grant_types, client_name, client_uri, logo_uri, client_type, token_endpoint_auth_method)"
                f" values (%s, %s, 'manual', %s, %s, %s, %s, %s, %s, %s) returning {_COLUMNS}",
                (uuid.uuid4(), digest, uris, grants or list(GRANT_TYPES), name or None, client_uri or None,
                 logo_uri or None, client_type, method))
            row = await cur.fetchone()
        assert row is not None
        return ok(client_json(row, plain), status=201)

    async def oauth_client(self, req: AuthRequest) -> Response:
        self._oauth_admin(req)
        method = req.request.method
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._load_client(conn, req)
            if method == "GET":
                return ok(client_json(row))
            if method == "DELETE":
                await conn.execute("update auth.oauth_clients set deleted_at = now(), updated_at = now()"
                                   " where id = %s", (row["id"],))
                return Response(status_code=204)
            return ok(client_json(await self._update(conn, row, req.body)))

    async def _update(self, conn: Conn, row: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        uris = _field(body, "redirect_uris", list)
        grants = _field(body, "grant_types", list)
        name = _field(body, "client_name", str)
        client_uri = _field(body, "client_uri", str)
        logo_uri = _field(body, "logo_uri", str)
        method = _field(body, "token_endpoint_auth_method", str)
        if all(v is None for v in (uris, grants, name, client_uri, logo_uri, method)):
            raise bad_request("validation_failed", "No fields provided for update")
        try:
            _check_redirect_uris(uris, required=False)
            if grants is not None:
                _check_grant_types(grants)
            _check_name(name)
            _check_uri("client_uri", client_uri)
            _check_uri("logo_uri", logo_uri)
            if method is not None and method not in AUTH_METHODS:
                raise _Invalid(f"invalid token_endpoint_auth_method: must be one of {_go_list(AUTH_METHODS)}")
        except _Invalid as exc:
            raise bad_request("validation_failed", str(exc)) from None
        if method is not None and _client_type_of(method) != row["client_type"]:
            valid = ("none",) if row["client_type"] == "public" else AUTH_METHODS[1:]
            raise bad_request("validation_failed", f"token_endpoint_auth_method '{method}' is not valid for"
                              f" client_type '{row['client_type']}'; valid methods: {_go_list(valid)}")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "update auth.oauth_clients set redirect_uris = coalesce(%s, redirect_uris),"
                " grant_types = coalesce(%s, grant_types), client_name = coalesce(%s, client_name),"
                " client_uri = coalesce(%s, client_uri), logo_uri = coalesce(%s, logo_uri),"
                " token_endpoint_auth_method = coalesce(%s, token_endpoint_auth_method), updated_at = now()"
                f" where id = %s returning {_COLUMNS}",
                (uris, grants, name, client_uri, logo_uri, method, row["id"]))
            updated = await cur.fetchone()
        assert updated is not None
        return updated

    async def oauth_client_regenerate_secret(self, req: AuthRequest) -> Response:
        self._oauth_admin(req)
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._load_client(conn, req)
            if row["client_type"] != "confidential":
                raise bad_request("validation_failed", "Cannot regenerate secret for public client")
            plain, digest = _new_secret()
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(f"update auth.oauth_clients set client_secret_hash = %s, updated_at = now()"
                                  f" where id = %s returning {_COLUMNS}", (digest, row["id"]))
                updated = await cur.fetchone()
        assert updated is not None
        return ok(client_json(updated, plain))
