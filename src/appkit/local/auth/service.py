"""The GoTrue-compatible HTTP API (mounted at ``/auth/v1``)."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt as pyjwt
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from appkit.errors import AuthError
from appkit.local.auth import core, mail, totp
from appkit.local.auth.batch import Coalescer
from appkit.local.auth.core import Conn, Row
from appkit.local.auth.errors import (
    API_VERSION,
    API_VERSION_HEADER,
    ApiError,
    OAuthError,
    bad_request,
    error_response,
    forbidden,
    not_found,
    oauth_error_response,
    too_many,
    unauthorized,
    unprocessable,
)
from appkit.local.auth.passwords import Hasher, check_strength
from appkit.local.auth.ratelimit import Limiter, parse_duration
from appkit.local.context import StackContext

log = logging.getLogger("appkit.local.auth")

VERSION = "v2.180.0-appkit"
ADMIN_ROLES = ("service_role", "supabase_admin")
OPEN_PATHS = ("/verify", "/callback", "/authorize", "/health", "/.well-known/jwks.json")
MFA_CHALLENGE_EXPIRY = 300
FLOW_STATE_EXPIRY = 300
#: refresh grants run at most this many statements at once; requests arriving meanwhile go
#: together in the next statement (a statement's start-up dominates a refresh's cost in
#: Postgres: ~0.5 ms alone, ~0.2 ms per token in a batch of 8)
REFRESH_WORKERS = 2

#: OAuth providers /authorize can redirect to: (authorize URL, default scopes)
PROVIDERS: dict[str, tuple[str, str]] = {
    "apple": ("https://appleid.apple.com/auth/authorize", "email name"),
    "azure": ("https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "openid"),
    "bitbucket": ("https://bitbucket.org/site/oauth2/authorize", "account email"),
    "discord": ("https://discord.com/api/oauth2/authorize", "email identify"),
    "facebook": ("https://www.facebook.com/dialog/oauth", "email"),
    "github": ("https://github.com/login/oauth/authorize", "user:email"),
    "gitlab": ("https://gitlab.com/oauth/authorize", "read_user"),
    "google": ("https://accounts.google.com/o/oauth2/auth", "email profile"),
    "keycloak": ("", "profile email"),
    "linkedin_oidc": ("https://www.linkedin.com/oauth/v2/authorization", "openid email profile"),
    "notion": ("https://api.notion.com/v1/oauth/authorize", ""),
    "slack_oidc": ("https://slack.com/openid/connect/authorize", "openid email profile"),
    "spotify": ("https://accounts.spotify.com/authorize", "user-read-email"),
    "twitch": ("https://id.twitch.tv/oauth2/authorize", "user:read:email"),
    "twitter": ("https://api.twitter.com/oauth/authenticate", ""),
    "workos": ("https://api.workos.com/sso/authorize", ""),
    "zoom": ("https://zoom.us/oauth/authorize", ""),
}


@dataclass
class Req:
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


Handler = Callable[[Req], Awaitable[Response]]


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


class AuthService:
    name = "auth"

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.auth
        self.keys = ctx.keys
        self.issuer = ctx.api_url.rstrip("/") + "/auth/v1"
        self.tokens = core.Tokens(self.cfg, self.keys, self.issuer)
        self.hasher = Hasher()
        self._refresh_batches = Coalescer(self._refresh_many, workers=REFRESH_WORKERS, max_batch=64)
        self.limiter = Limiter()
        self._pool: AsyncConnectionPool | None = None
        self._api_keys = {ctx.keys.anon_key, ctx.keys.service_role_key}
        self._email_frequency = _duration(self.cfg.email.max_frequency, 1.0)
        self._sms_frequency = _duration(self.cfg.sms.max_frequency, 5.0)
        r: list[tuple[str, Handler, list[str]]] = [
            ("/health", self.health, ["GET"]),
            ("/settings", self.settings, ["GET"]),
            ("/.well-known/jwks.json", self.jwks, ["GET"]),
            ("/signup", self.signup, ["POST"]),
            ("/token", self.token, ["POST"]),
            ("/logout", self.logout, ["POST"]),
            ("/user", self.get_user, ["GET"]),
            ("/user", self.update_user, ["PUT"]),
            ("/recover", self.recover, ["POST"]),
            ("/otp", self.otp, ["POST"]),
            ("/magiclink", self.magiclink, ["POST"]),
            ("/resend", self.resend, ["POST"]),
            ("/verify", self.verify_get, ["GET"]),
            ("/verify", self.verify_post, ["POST"]),
            ("/reauthenticate", self.reauthenticate, ["GET", "POST"]),
            ("/authorize", self.authorize, ["GET"]),
            ("/callback", self.callback, ["GET", "POST"]),
            ("/factors", self.factor_enroll, ["POST"]),
            ("/factors/{factor_id}/challenge", self.factor_challenge, ["POST"]),
            ("/factors/{factor_id}/verify", self.factor_verify, ["POST"]),
            ("/factors/{factor_id}", self.factor_unenroll, ["DELETE"]),
            ("/invite", self.invite, ["POST"]),
            ("/admin/users", self.admin_list_users, ["GET"]),
            ("/admin/users", self.admin_create_user, ["POST"]),
            ("/admin/users/{user_id}", self.admin_get_user, ["GET"]),
            ("/admin/users/{user_id}", self.admin_update_user, ["PUT"]),
            ("/admin/users/{user_id}", self.admin_delete_user, ["DELETE"]),
            ("/admin/users/{user_id}/factors", self.admin_list_factors, ["GET"]),
            ("/admin/users/{user_id}/factors/{factor_id}", self.admin_delete_factor, ["DELETE"]),
            ("/admin/generate_link", self.admin_generate_link, ["POST"]),
            ("/_appkit/messages", self.messages, ["GET"]),
        ]
        endpoints = [(p, self._wrap(p, h), m) for p, h, m in r]
        self.app = ExactRoutes(
            {(method, p): e for p, e, m in endpoints if "{" not in p for method in m},
            Starlette(routes=[Route(p, e, methods=m) for p, e, m in endpoints]),
        )

    async def startup(self) -> None:
        # synchronous_commit=off: a commit returns before its WAL is on disk (the WAL writer
        # flushes it within 200 ms). A crash of the machine or of Postgres in that window can
        # lose the latest sessions/token rotations (their users sign in again) but never
        # corrupts; in exchange every auth write costs ~0.15 ms less CPU and ~0.4 ms less time.
        # Only the auth service's own connections: data written through REST keeps the
        # server's setting.
        self._pool = await self.ctx.pool("auth", user="supabase_auth_admin", max_size=6,
                                         options="-c TimeZone=UTC -c synchronous_commit=off")

    async def shutdown(self) -> None:
        self._pool = None

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise ApiError(503, "unexpected_failure", "auth service is not started")
        return self._pool

    # -- plumbing ----------------------------------------------------------------
    def _wrap(self, path: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        is_open = path in OPEN_PATHS

        async def endpoint(request: Request) -> Response:
            try:
                if not is_open:
                    denied = self._check_apikey(request)
                    if denied is not None:
                        return denied
                body: dict[str, Any] = {}
                if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                    body = core.json_body(await request.body())
                host = request.client.host if request.client else None
                response = await handler(Req(request, body, core.client_ip(host)))
            except ApiError as err:
                return error_response(request, err)
            except OAuthError as err:
                return oauth_error_response(err)
            except psycopg.errors.UniqueViolation as exc:
                log.info("auth: unique violation: %s", exc.diag.constraint_name)
                return error_response(request, unprocessable("conflict", "The resource already exists"))
            except psycopg.Error as exc:
                log.exception("auth: database error")
                msg = "Database error" + (f": {exc.diag.message_primary}" if exc.diag.message_primary else "")
                return error_response(request, ApiError(500, "unexpected_failure", msg))
            except Exception:
                log.exception("auth: unexpected error on %s %s", request.method, path)
                return error_response(request, ApiError(500, "unexpected_failure", "Unexpected failure"))
            response.headers[API_VERSION_HEADER] = API_VERSION
            return response

        return endpoint

    def _check_apikey(self, request: Request) -> Response | None:
        key = request.headers.get("apikey") or request.query_params.get("apikey")
        if not key:
            return JSONResponse({"message": "No API key found in request"}, status_code=401)
        if key in self._api_keys:
            return None
        try:
            claims = self.keys.verify(key)
        except AuthError:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        if claims.get("role") not in ("anon", "service_role", "authenticated"):
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        if len(self._api_keys) < 1000:
            self._api_keys.add(key)
        return None

    def _bearer(self, req: Req) -> str:
        header = req.request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("no_authorization", "This endpoint requires a Bearer token")
        return token.strip()

    def _verify_jwt(self, token: str) -> dict[str, Any]:
        """The token's claims (``keys.verify``, which remembers tokens it verified), or 401."""
        try:
            return self.keys.verify(token)
        except AuthError as exc:
            raise unauthorized("bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc.message}") from None

    def _claims(self, req: Req) -> dict[str, Any]:
        token = self._bearer(req)
        claims = self._verify_jwt(token)
        aud = claims.get("aud")
        if (aud is not None and aud != "authenticated" and not (isinstance(aud, list) and "authenticated" in aud)
                and claims.get("role") not in ADMIN_ROLES):
                raise unauthorized("bad_jwt", "invalid JWT: unable to parse or verify signature, invalid audience")
        return claims

    def _subject(self, claims: dict[str, Any]) -> tuple[str, str | None]:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise forbidden("bad_jwt", "invalid claim: missing sub claim")
        if not _is_uuid(sub):
            raise forbidden("bad_jwt", "invalid claim: sub claim must be a UUID")
        session_id = claims.get("session_id")
        if session_id is not None and not _is_uuid(session_id):
            raise forbidden("bad_jwt", "invalid claim: session_id claim must be a UUID")
        return sub, session_id

    async def _current(self, req: Req, conn: Conn, *, lock: bool = False) -> tuple[dict[str, Any], Row]:
        """The caller's claims and user (``user_not_found`` / ``session_not_found`` -> 403)."""
        claims = self._claims(req)
        sub, session_id = self._subject(claims)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"select {core.USER_COLS}, {core.USER_EXTRAS},"
                " exists(select 1 from auth.sessions s where s.id = %s and s.user_id = u.id) as has_session"
                " from auth.users u where u.id = %s and u.deleted_at is null" + (" for update" if lock else ""),
                (session_id, sub),
            )
            user = await cur.fetchone()
        if user is None:
            raise forbidden("user_not_found", "User from sub claim in JWT does not exist")
        if session_id is not None and not user["has_session"]:
            raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
        req.claims = claims
        return claims, user

    def _require_admin(self, req: Req) -> dict[str, Any]:
        token = self._bearer(req)
        claims = self._verify_jwt(token)
        if claims.get("role") not in ADMIN_ROLES:
            raise forbidden("not_admin", "User not allowed")
        return claims

    def _rate(self, kind: str, key: str, limit: int, window: float, code: str = "over_request_rate_limit",
              msg: str = "Request rate limit reached") -> None:
        if not self.limiter.allow(kind, key, limit, window):
            raise too_many(code, msg)

    def _ip_limit(self, req: Req, kind: str) -> None:
        rl = self.cfg.rate_limit
        limit = {"sign_in_sign_ups": rl.sign_in_sign_ups, "token_refresh": rl.token_refresh,
                 "token_verifications": rl.token_verifications, "anonymous_users": rl.anonymous_users}[kind]
        window = 3600.0 if kind == "anonymous_users" else 300.0
        self._rate(kind, req.ip or "-", limit, window)

    def _redirect_to(self, req: Req) -> str:
        return core.redirect_allowed(self.cfg, req.query.get("redirect_to") or core.get_str(req.body, "redirect_to"))

    async def _send(self, conn: Conn, user: Row, *, kind: str, token_type: str, recipient: str, channel: str,
                    redirect_to: str | None = None, pkce: bool = False, check_frequency: bool = True) -> str:
        """Create a one-time code + link and capture the message; returns the token hash."""
        if channel == "email":
            if check_frequency:
                self._rate("email_frequency", recipient.lower(), 1, self._email_frequency, "over_email_send_rate_limit",
                           f"For security purposes, you can only request this after {int(self._email_frequency)}"
                           " seconds.")
            self._rate("email_sent", "*", self.cfg.rate_limit.email_sent, 3600.0, "over_email_send_rate_limit",
                       "email rate limit exceeded")
        else:
            if check_frequency:
                self._rate("sms_frequency", recipient, 1, self._sms_frequency, "over_sms_send_rate_limit",
                           f"For security purposes, you can only request this after {int(self._sms_frequency)}"
                           " seconds.")
            self._rate("sms_sent", "*", self.cfg.rate_limit.sms_sent, 3600.0, "over_sms_send_rate_limit",
                       "SMS rate limit exceeded")
        otp = core.new_otp(self.cfg.email.otp_length if channel == "email" else 6)
        digest = await core.store_otp(conn, str(user["id"]), token_type, recipient, otp)
        link = None
        target = redirect_to or self.cfg.site_url
        if channel == "email" and kind != "reauthentication":
            link = core.verify_link(self.issuer, digest, kind, target, pkce)
        await mail.capture(conn, channel=channel, recipient=recipient, kind=kind, otp=otp, link=link,
                           token_hash=digest, redirect_to=target, user_id=str(user["id"]),
                           sms_template=self.cfg.sms.template)
        return digest

    # -- info endpoints -------------------------------------------------------------
    async def health(self, req: Req) -> Response:
        return ok({"version": VERSION, "name": "GoTrue",
                   "description": "GoTrue is a user registration and authentication API"})

    def _providers(self) -> dict[str, dict[str, Any]]:
        extra = self.cfg.model_extra or {}
        external = extra.get("external") or {}
        return {k: v for k, v in external.items() if isinstance(v, dict)}

    async def settings(self, req: Req) -> Response:
        external: dict[str, bool] = {name: False for name in PROVIDERS}
        for name, conf in self._providers().items():
            external[name] = bool(conf.get("enabled"))
        external.update({"anonymous_users": self.cfg.enable_anonymous_sign_ins,
                         "email": self.cfg.email.enable_signup, "phone": self.cfg.sms.enable_signup})
        return ok({
            "external": external,
            "disable_signup": not self.cfg.enable_signup,
            "mailer_autoconfirm": not self.cfg.email.enable_confirmations,
            "phone_autoconfirm": not self.cfg.sms.enable_confirmations,
            "sms_provider": "twilio",
            "saml_enabled": False,
        })

    async def jwks(self, req: Req) -> Response:
        return ok(self.keys.jwks(), headers={"Cache-Control": "public, max-age=600"})

    async def messages(self, req: Req) -> Response:
        self._require_admin(req)
        try:
            limit = int(req.query.get("limit", "100"))
        except ValueError:
            raise bad_request("validation_failed", "limit must be an integer") from None
        recipient = req.query.get("email") or req.query.get("phone") or req.query.get("recipient")
        async with self.pool.connection() as conn:
            items = await mail.list_messages_async(conn, recipient, req.query.get("type"), max(1, min(limit, 1000)))
        return ok({"messages": items})

    # -- sign up / sign in ------------------------------------------------------------
    async def signup(self, req: Req) -> Response:
        body = req.body
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        password = core.get_str(body, "password")
        data = core.get_obj(body, "data") or {}
        if not self.cfg.enable_signup:
            raise unprocessable("signup_disabled", "Signups not allowed for this instance")
        if not email and not phone:
            if password:
                raise bad_request("validation_failed", "To signup, please provide your email")
            return await self._anonymous(req, data)
        self._ip_limit(req, "sign_in_sign_ups")
        if email and phone:
            raise bad_request("validation_failed",
                              "Only an email address or phone number should be provided on signup.")
        if email:
            if not self.cfg.email.enable_signup:
                raise unprocessable("email_provider_disabled", "Email signups are disabled")
            email = core.validate_email(email)
        else:
            if not self.cfg.sms.enable_signup:
                raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
            phone = core.validate_phone(phone)
        if not password:
            raise unprocessable("validation_failed", "Signup requires a valid password")
        check_strength(self.cfg, password)
        pkce = core.pkce_params(body)
        hashed = await self.hasher.hash(password)
        redirect = self._redirect_to(req)
        autoconfirm = not (self.cfg.email.enable_confirmations if email else self.cfg.sms.enable_confirmations)
        async with self.pool.connection() as conn, conn.transaction():
            existing = await (core.user_by_email(conn, email, lock=True) if email
                              else core.user_by_phone(conn, phone, lock=True))
            if existing is not None:
                confirmed = existing["email_confirmed_at"] if email else existing["phone_confirmed_at"]
                if confirmed is not None or autoconfirm:
                    if autoconfirm:
                        raise unprocessable("user_already_exists", "User already registered")
                    # Confirmations on: answer like a fresh signup (no user enumeration).
                    return ok(_obfuscated_user(email, phone, data))
                user = existing
                await conn.execute(
                    "update auth.users set encrypted_password = %s, raw_user_meta_data ="
                    " coalesce(raw_user_meta_data, '{}') || %s::jsonb, updated_at = now() where id = %s",
                    (hashed, json.dumps(data), user["id"]),
                )
            else:
                uid = await core.insert_user(conn, email=email or None, phone=phone or None, password_hash=hashed,
                                             user_metadata=data, email_confirmed=bool(email) and autoconfirm,
                                             phone_confirmed=bool(phone) and autoconfirm)
                created_user = await core.user_by_id(conn, uid)
                assert created_user is not None
                user = created_user
                await core.audit(conn, "user_signedup", user, req.ip, provider="email" if email else "phone")
            if autoconfirm:
                session = await self.tokens.create_session(conn, user, "password", ip=req.ip,
                                                           user_agent=req.user_agent)
                return ok(session)
            if pkce:
                await core.create_flow_state(conn, str(user["id"]), pkce, "email", "email/signup")
            if email:
                await self._send(conn, user, kind="signup", token_type="confirmation_token", recipient=email,
                                 channel="email", redirect_to=redirect, pkce=pkce is not None)
            else:
                await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone,
                                 channel="sms")
            fresh = await core.user_by_id(conn, str(user["id"]))
            assert fresh is not None
            return ok(core.user_json(fresh))

    async def _anonymous(self, req: Req, data: dict[str, Any]) -> Response:
        if not self.cfg.enable_anonymous_sign_ins:
            raise unprocessable("anonymous_provider_disabled", "Anonymous sign-ins are disabled")
        self._ip_limit(req, "anonymous_users")
        async with self.pool.connection() as conn, conn.transaction():
            uid = await core.insert_user(conn, user_metadata=data, is_anonymous=True)
            user = await core.user_by_id(conn, uid)
            assert user is not None
            await core.audit(conn, "user_signedup", user, req.ip, provider="anonymous")
            return ok(await self.tokens.create_session(conn, user, "anonymous", ip=req.ip,
                                                       user_agent=req.user_agent))

    async def token(self, req: Req) -> Response:
        grant = req.query.get("grant_type", "")
        if grant == "password":
            return await self._password_grant(req)
        if grant == "refresh_token":
            return await self._refresh_grant(req)
        if grant == "pkce":
            return await self._pkce_grant(req)
        if grant == "id_token":
            raise bad_request("provider_disabled", "Sign in with an ID token needs an OAuth provider; the local"
                              " stack cannot verify provider ID tokens")
        raise OAuthError("unsupported_grant_type", "")

    async def _password_grant(self, req: Req) -> Response:
        self._ip_limit(req, "sign_in_sign_ups")
        email = core.get_str(req.body, "email")
        phone = core.get_str(req.body, "phone")
        password = core.get_str(req.body, "password")
        if not email and not phone:
            raise bad_request("validation_failed", "missing email or phone")
        if not password:
            raise bad_request("validation_failed", "missing password")
        async with self.pool.connection() as conn:
            if email:
                user = await core.user_by_email(conn, email.strip())
            else:
                try:
                    user = await core.user_by_phone(conn, core.validate_phone(phone))
                except ApiError:
                    user = None
        hashed = user["encrypted_password"] if user is not None else None
        valid = await self.hasher.check(password, hashed)
        if user is None or not valid:
            raise bad_request("invalid_credentials", "Invalid login credentials")
        await self.hasher.upgrade(self.pool, user["id"], password, hashed)
        if is_banned(user):
            raise bad_request("user_banned", "User is banned")
        if email and user["email_confirmed_at"] is None and self.cfg.email.enable_confirmations:
            raise bad_request("email_not_confirmed", "Email not confirmed")
        if phone and user["phone_confirmed_at"] is None and self.cfg.sms.enable_confirmations:
            raise bad_request("phone_not_confirmed", "Phone not confirmed")
        async with self.pool.connection() as conn, conn.transaction():
            session = await self.tokens.create_session(conn, user, "password", ip=req.ip, user_agent=req.user_agent)
            await core.audit(conn, "login", user, req.ip, provider="email" if email else "phone")
        try:
            check_strength(self.cfg, password)
        except ApiError as weak:  # GoTrue tells the client when the password breaks the current rules
            reasons = weak.extra.get("weak_password", {}).get("reasons", ["length"])
            session["weak_password"] = {"reasons": reasons, "message": weak.msg}
        return ok(session)

    async def _refresh_grant(self, req: Req) -> Response:
        self._ip_limit(req, "token_refresh")
        token = core.get_str(req.body, "refresh_token")
        if not token:
            raise bad_request("validation_failed", "refresh_token required")
        fast = await self._refresh_batches(token)
        if fast is not None:
            return Response(fast, media_type="application/json")
        async with self.pool.connection() as conn, conn.transaction():
            session = await self.tokens.refresh(conn, token)
        if session is None:
            raise bad_request(*core.REUSE_ERROR)
        return ok(session)

    async def _refresh_many(self, tokens: list[str]) -> list[str | None]:
        """The refresh grant's common case for the tokens of concurrent requests, in one
        statement (``REFRESH_WORKERS``)."""
        async with self.pool.connection() as conn:
            try:
                return await self.tokens.refresh_fast(conn, tokens)
            except psycopg.Error as exc:
                if len(tokens) == 1:
                    raise
                # not this request's fault (e.g. a deadlock with a concurrent batch; nothing was
                # written): each token is refreshed alone on the general path
                log.info("auth: a batch of %d refreshes failed (%s); refreshing them one by one",
                         len(tokens), type(exc).__name__)
                return [None] * len(tokens)

    async def _pkce_grant(self, req: Req) -> Response:
        code = core.get_str(req.body, "auth_code")
        verifier = core.get_str(req.body, "code_verifier")
        if not code or not verifier:
            raise bad_request("validation_failed",
                              "invalid request: both auth code and code verifier should be non-empty")
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "delete from auth.flow_state where id = (select id from auth.flow_state where auth_code = %s"
                " limit 1 for update) returning user_id, code_challenge_method::text, code_challenge,"
                " authentication_method, coalesce(auth_code_issued_at, created_at) > now() - make_interval(secs => %s)",
                (code, FLOW_STATE_EXPIRY),
            )
            row = await cur.fetchone()
            if row is None or row[0] is None:
                raise not_found("flow_state_not_found", "invalid flow state, no valid flow state found")
            if not row[4]:
                raise not_found("flow_state_expired", "invalid flow state, flow state has expired")
            if not core.pkce_matches(row[1], row[2], verifier):
                raise forbidden("bad_code_verifier", "code challenge does not match previously saved code verifier")
            user = await core.user_by_id(conn, str(row[0]))
            if user is None:
                raise not_found("user_not_found", "User not found")
            if is_banned(user):
                raise bad_request("user_banned", "User is banned")
            method = {"email/signup": "otp", "magiclink": "otp"}.get(str(row[3]), str(row[3]))
            session = await self.tokens.create_session(conn, user, method, ip=req.ip, user_agent=req.user_agent)
        return ok(session)

    async def logout(self, req: Req) -> Response:
        scope = req.query.get("scope", "global")
        if scope not in ("global", "local", "others"):
            raise bad_request("validation_failed", "Unsupported logout scope \"" + scope + "\"")
        async with self.pool.connection() as conn, conn.transaction():
            claims, user = await self._current(req, conn)
            sid = claims.get("session_id")
            if scope == "local" and sid:
                await conn.execute("delete from auth.sessions where id = %s", (sid,))
            elif scope == "others":
                await conn.execute("delete from auth.sessions where user_id = %s and id is distinct from %s",
                                   (user["id"], sid))
            else:
                await conn.execute("delete from auth.sessions where user_id = %s", (user["id"],))
            await core.audit(conn, "logout", user, req.ip, scope=scope)
        return Response(status_code=204)

    # -- the current user ------------------------------------------------------------
    async def get_user(self, req: Req) -> Response:
        """The hot path: one query, the JSON built by Postgres and passed through."""
        claims = self._claims(req)
        sub, session_id = self._subject(claims)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"select ({core.USER_JSON_SQL})::text,"
                " exists(select 1 from auth.sessions s where s.id = %s and s.user_id = u.id)"
                " from auth.users u where u.id = %s and u.deleted_at is null", (session_id, sub),
            )
            row = await cur.fetchone()
        if row is None:
            raise forbidden("user_not_found", "User from sub claim in JWT does not exist")
        if session_id is not None and not row[1]:
            raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
        return Response(row[0], media_type="application/json")

    async def update_user(self, req: Req) -> Response:
        body = req.body
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        password = body.get("password")
        if password is not None and not isinstance(password, str):
            raise bad_request("bad_json", "Could not parse request body as JSON: field 'password' must be a string")
        nonce = core.get_str(body, "nonce")
        data = core.get_obj(body, "data")
        app_data = body.get("app_metadata")
        if app_data is not None:
            raise forbidden("not_admin", "Updating app_metadata requires the service role")
        pkce = core.pkce_params(body)
        redirect = self._redirect_to(req)
        if email:
            email = core.validate_email(email)
        if phone:
            phone = core.validate_phone(phone)
        new_hash: str | None = None
        if password is not None:
            check_strength(self.cfg, password)
        async with self.pool.connection() as conn:
            _, snapshot = await self._current(req, conn)
        if password is not None:
            if snapshot["encrypted_password"] and await self.hasher.check(password, snapshot["encrypted_password"]):
                raise unprocessable("same_password", "New password should be different from the old password.")
            new_hash = await self.hasher.hash(password)
        async with self.pool.connection() as conn, conn.transaction():
            claims, user = await self._current(req, conn, lock=True)
            uid = str(user["id"])
            if password is not None:
                if nonce:
                    target = user["email"] or user["phone"] or ""
                    await core.consume_otp(conn, ["reauthentication_token"], self.cfg.email.otp_expiry,
                                           digest=core.token_hash(target, nonce))
                elif self.cfg.email.secure_password_change and claims.get("aal") != "aal2":
                    raise bad_request("reauthentication_needed", "Password update requires reauthentication")
                await conn.execute("update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
                                   (new_hash, uid))
                await core.audit(conn, "user_updated_password", user, req.ip)
            if data is not None:
                merged = core.merge_metadata(user["raw_user_meta_data"], data)
                await conn.execute("update auth.users set raw_user_meta_data = %s, updated_at = now() where id = %s",
                                   (json.dumps(merged), uid))
            if email and email != (user["email"] or "").lower():
                other = await core.user_by_email(conn, email)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                if not self.cfg.email.enable_confirmations:
                    await conn.execute(
                        "update auth.users set email = %s, email_confirmed_at = now(), email_change = '',"
                        " is_anonymous = false, updated_at = now(), raw_user_meta_data ="
                        " coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email', %s::text)"
                        " where id = %s", (email, email, uid),
                    )
                    fresh = await core.user_by_id(conn, uid)
                    assert fresh is not None
                    await core.ensure_identity(conn, fresh, "email")
                else:
                    await conn.execute(
                        "update auth.users set email_change = %s, email_change_confirm_status = 0,"
                        " updated_at = now() where id = %s", (email, uid),
                    )
                    await conn.execute(
                        "delete from auth.one_time_tokens where user_id = %s and token_type in"
                        " ('email_change_token_new', 'email_change_token_current')", (uid,),
                    )
                    if pkce:
                        await core.create_flow_state(conn, uid, pkce, "email", "email_change")
                    await self._send(conn, user, kind="email_change", token_type="email_change_token_new",
                                     recipient=email, channel="email", redirect_to=redirect, pkce=pkce is not None)
                    if self.cfg.email.double_confirm_changes and user["email"] and user["email_confirmed_at"]:
                        await self._send(conn, user, kind="email_change", token_type="email_change_token_current",
                                         recipient=user["email"], channel="email", redirect_to=redirect,
                                         pkce=pkce is not None, check_frequency=False)
            if phone and phone != (user["phone"] or ""):
                other = await core.user_by_phone(conn, phone)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("phone_exists", "A user with this phone number has already been registered")
                if not self.cfg.sms.enable_confirmations:
                    await conn.execute(
                        "update auth.users set phone = %s, phone_confirmed_at = now(), phone_change = '',"
                        " is_anonymous = false, updated_at = now() where id = %s", (phone, uid),
                    )
                    fresh = await core.user_by_id(conn, uid)
                    assert fresh is not None
                    await core.ensure_identity(conn, fresh, "phone")
                else:
                    await conn.execute("update auth.users set phone_change = %s, updated_at = now() where id = %s",
                                       (phone, uid))
                    await self._send(conn, user, kind="phone_change", token_type="phone_change_token",
                                     recipient=phone, channel="sms")
            fresh = await core.user_by_id(conn, uid)
            assert fresh is not None
            if data is not None or email or phone:
                await core.audit(conn, "user_modified", fresh, req.ip)
        return ok(core.user_json(fresh))

    async def reauthenticate(self, req: Req) -> Response:
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn)
            if user["email"]:
                await self._send(conn, user, kind="reauthentication", token_type="reauthentication_token",
                                 recipient=user["email"], channel="email")
            elif user["phone"]:
                await self._send(conn, user, kind="reauthentication", token_type="reauthentication_token",
                                 recipient=user["phone"], channel="sms")
            else:
                raise unprocessable("validation_failed", "Reauthentication requires the user to have an email or"
                                    " a phone number")
        return ok({})

    # -- one-time codes and links ------------------------------------------------------
    async def recover(self, req: Req) -> Response:
        email = core.validate_email(core.get_str(req.body, "email"))
        pkce = core.pkce_params(req.body)
        redirect = self._redirect_to(req)
        async with self.pool.connection() as conn, conn.transaction():
            user = await core.user_by_email(conn, email, lock=True)
            if user is not None:
                if pkce:
                    await core.create_flow_state(conn, str(user["id"]), pkce, "email", "recovery")
                await self._send(conn, user, kind="recovery", token_type="recovery_token", recipient=email,
                                 channel="email", redirect_to=redirect, pkce=pkce is not None)
                await core.audit(conn, "user_recovery_requested", user, req.ip)
        return ok({})

    async def magiclink(self, req: Req) -> Response:
        req.body.setdefault("create_user", True)
        return await self.otp(req)

    async def otp(self, req: Req) -> Response:
        body = req.body
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        create = core.get_bool(body, "create_user", True)
        data = core.get_obj(body, "data") or {}
        if email and phone:
            raise bad_request("validation_failed", "Only an email address or phone number should be provided")
        if not email and not phone:
            raise bad_request("validation_failed", "An email address or phone number is required")
        pkce = core.pkce_params(body)
        redirect = self._redirect_to(req)
        if email:
            email = core.validate_email(email)
        else:
            phone = core.validate_phone(phone)
        async with self.pool.connection() as conn, conn.transaction():
            user = await (core.user_by_email(conn, email, lock=True) if email
                          else core.user_by_phone(conn, phone, lock=True))
            created = False
            if user is None:
                if not create or not self.cfg.enable_signup:
                    raise unprocessable("otp_disabled", "Signups not allowed for otp")
                if email and not self.cfg.email.enable_signup:
                    raise unprocessable("email_provider_disabled", "Email signups are disabled")
                if phone and not self.cfg.sms.enable_signup:
                    raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
                uid = await core.insert_user(conn, email=email or None, phone=phone or None, user_metadata=data)
                user = await core.user_by_id(conn, uid)
                assert user is not None
                created = True
                await core.audit(conn, "user_signedup", user, req.ip, provider="email" if email else "phone")
            if is_banned(user):
                raise bad_request("user_banned", "User is banned")
            if email:
                confirmed = user["email_confirmed_at"] is not None
                kind, token_type = ("magiclink", "recovery_token") if confirmed and not created else (
                    "signup", "confirmation_token")
                if pkce:
                    await core.create_flow_state(conn, str(user["id"]), pkce, "email",
                                                 "magiclink" if kind == "magiclink" else "email/signup")
                await self._send(conn, user, kind=kind, token_type=token_type, recipient=email, channel="email",
                                 redirect_to=redirect, pkce=pkce is not None)
                return ok({})
            await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone, channel="sms")
            return ok({"message_id": f"appkit-{uuid.uuid4()}"})

    async def resend(self, req: Req) -> Response:
        body = req.body
        kind = core.get_str(body, "type")
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        if kind not in ("signup", "email_change", "sms", "phone_change"):
            raise bad_request("validation_failed",
                              "Missing one of these types: signup, email_change, sms, phone_change")
        if kind in ("signup", "email_change") and not email:
            raise bad_request("validation_failed", "Type provided requires an email address")
        if kind in ("sms", "phone_change") and not phone:
            raise bad_request("validation_failed", "Type provided requires a phone number")
        redirect = self._redirect_to(req)
        async with self.pool.connection() as conn, conn.transaction():
            if kind == "signup":
                email = core.validate_email(email)
                user = await core.user_by_email(conn, email, lock=True)
                if user is not None and user["email_confirmed_at"] is None:
                    await self._send(conn, user, kind="signup", token_type="confirmation_token", recipient=email,
                                     channel="email", redirect_to=redirect)
            elif kind == "email_change":
                email = core.validate_email(email)
                user = await core.fetch_user(conn, "lower(u.email_change) = lower(%s) and u.deleted_at is null",
                                             (email,), lock=True)
                if user is not None:
                    await self._send(conn, user, kind="email_change", token_type="email_change_token_new",
                                     recipient=email, channel="email", redirect_to=redirect)
            elif kind == "sms":
                phone = core.validate_phone(phone)
                user = await core.user_by_phone(conn, phone, lock=True)
                if user is not None and user["phone_confirmed_at"] is None:
                    await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone,
                                     channel="sms")
            else:
                phone = core.validate_phone(phone)
                user = await core.fetch_user(conn, "u.phone_change = %s and u.deleted_at is null", (phone,),
                                             lock=True)
                if user is not None:
                    await self._send(conn, user, kind="phone_change", token_type="phone_change_token",
                                     recipient=phone, channel="sms")
        return ok({"message_id": f"appkit-{uuid.uuid4()}"} if phone else {})

    async def _verify(self, conn: Conn, kind: str, *, digest: str, recipient: str | None,
                      ip: str | None, user_agent: str | None) -> tuple[Row, dict[str, Any] | None, str | None]:
        """Consume the code and apply its effect; (user, session or None when a second email
        change confirmation is pending, PKCE auth code or None)."""
        types = core.VERIFY_TYPES.get(kind)
        if types is None:
            raise bad_request("validation_failed", "Verify requires a verification type")
        user_id, token_type, relates_to = await core.consume_otp(conn, types, self.cfg.email.otp_expiry,
                                                                 digest=digest, recipient=recipient)
        user = await core.user_by_id(conn, user_id, lock=True)
        if user is None:
            raise forbidden("otp_expired", "Token has expired or is invalid")
        if is_banned(user):
            raise bad_request("user_banned", "User is banned")
        method = "otp"
        if token_type == "confirmation_token":
            if user["phone"] and relates_to == user["phone"]:
                await conn.execute("update auth.users set phone_confirmed_at = coalesce(phone_confirmed_at, now()),"
                                   " updated_at = now() where id = %s", (user_id,))
            else:
                await conn.execute("update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()),"
                                   " updated_at = now() where id = %s", (user_id,))
            method = "invite" if kind == "invite" else "otp"
        elif token_type == "recovery_token":
            await conn.execute("update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()),"
                               " updated_at = now() where id = %s", (user_id,))
            method = "recovery" if kind == "recovery" else "otp"
        elif token_type in ("email_change_token_new", "email_change_token_current"):
            other = ("email_change_token_current" if token_type == "email_change_token_new"
                     else "email_change_token_new")
            cur = await conn.execute("select 1 from auth.one_time_tokens where user_id = %s and token_type = %s",
                                     (user_id, other))
            if await cur.fetchone() is not None:
                await conn.execute("update auth.users set email_change_confirm_status = 1 where id = %s", (user_id,))
                return user, None, None
            if not user["email_change"]:
                raise forbidden("otp_expired", "Token has expired or is invalid")
            await conn.execute(
                "update auth.users set email = email_change, email_change = '', email_change_confirm_status = 0,"
                " email_confirmed_at = now(), is_anonymous = false, updated_at = now(),"
                " raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email', email_change)"
                " where id = %s", (user_id,),
            )
            method = "email_change"
        elif token_type == "phone_change_token":
            await conn.execute(
                "update auth.users set phone = phone_change, phone_change = '', phone_confirmed_at = now(),"
                " is_anonymous = false, updated_at = now() where id = %s", (user_id,),
            )
            method = "otp"
        fresh = await core.user_by_id(conn, user_id)
        assert fresh is not None
        if token_type.startswith("email_change"):
            await core.ensure_identity(conn, fresh, "email")
        elif token_type == "phone_change_token":
            await core.ensure_identity(conn, fresh, "phone")
        elif fresh["email_confirmed_at"] is not None and fresh["email"]:
            await core.ensure_identity(conn, fresh, "email")
        if fresh["phone_confirmed_at"] is not None and fresh["phone"] and token_type == "confirmation_token":
            await core.ensure_identity(conn, fresh, "phone")
        fresh = await core.user_by_id(conn, user_id)
        assert fresh is not None
        await core.audit(conn, "user_confirmation_requested" if kind == "signup" else "login", fresh, ip,
                         provider=kind)
        code = await core.issue_auth_code(conn, user_id)
        session = await self.tokens.create_session(conn, fresh, method, ip=ip, user_agent=user_agent)
        return fresh, session, code

    async def verify_post(self, req: Req) -> Response:
        self._ip_limit(req, "token_verifications")
        body = req.body
        kind = core.get_str(body, "type")
        token = core.get_str(body, "token")
        token_hash = core.get_str(body, "token_hash")
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        if not kind:
            raise bad_request("validation_failed", "Verify requires a verification type")
        if kind not in core.VERIFY_TYPES:
            raise bad_request("validation_failed", f"Unsupported verification type {kind!r}")
        recipient: str | None = None
        if token_hash:
            digest = token_hash.removeprefix("pkce_")
        elif token:
            if email:
                recipient = core.validate_email(email)
            elif phone:
                recipient = core.validate_phone(phone)
            elif len(token) > 20:  # a link's token hash passed as "token"
                digest = token.removeprefix("pkce_")
            else:
                raise bad_request("validation_failed", "Only an email address or phone number should be provided"
                                  " on verify")
            if recipient is not None:
                digest = core.token_hash(recipient, token.strip())
        else:
            raise bad_request("validation_failed", "Verify requires a token or a token hash")
        async with self.pool.connection() as conn, conn.transaction():
            _, session, _ = await self._verify(conn, kind, digest=digest, recipient=recipient, ip=req.ip,
                                               user_agent=req.user_agent)
        if session is None:
            return ok({"msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
                       "code": "200"})
        return ok(session)

    async def verify_get(self, req: Req) -> Response:
        kind = req.query.get("type", "")
        token = req.query.get("token", "")
        redirect = self._redirect_to(req)
        try:
            self._ip_limit(req, "token_verifications")
            if not token or kind not in core.VERIFY_TYPES:
                raise bad_request("validation_failed", "Verify requires a token and a verification type")
            pkce = token.startswith("pkce_")
            async with self.pool.connection() as conn, conn.transaction():
                _, session, code = await self._verify(conn, kind, digest=token.removeprefix("pkce_"),
                                                      recipient=None, ip=req.ip, user_agent=req.user_agent)
        except ApiError as err:
            params = {"error": "access_denied" if err.status < 500 else "server_error",
                      "error_code": err.error_code,
                      "error_description": "Email link is invalid or has expired" if err.error_code == "otp_expired"
                      else err.msg}
            return RedirectResponse(f"{redirect}#{urlencode(params)}", status_code=303)
        if session is None:
            params = {"message": "Confirmation link accepted. Please proceed to confirm link sent to the other email"}
            return RedirectResponse(f"{redirect}#{urlencode(params)}", status_code=303)
        if pkce and code:
            sep = "&" if urlsplit(redirect).query else "?"
            return RedirectResponse(f"{redirect}{sep}{urlencode({'code': code})}", status_code=303)
        fragment = {"access_token": session["access_token"], "expires_at": session["expires_at"],
                    "expires_in": session["expires_in"], "refresh_token": session["refresh_token"],
                    "token_type": "bearer", "type": kind}
        return RedirectResponse(f"{redirect}#{urlencode(fragment)}", status_code=303)

    # -- OAuth providers --------------------------------------------------------------
    async def authorize(self, req: Req) -> Response:
        provider = req.query.get("provider", "")
        if not provider:
            raise bad_request("validation_failed", "Unsupported provider: provider is required")
        conf = self._providers().get(provider)
        if provider not in PROVIDERS and conf is None:
            raise bad_request("validation_failed", f"Unsupported provider: Provider {provider} could not be found")
        if conf is None or not conf.get("enabled"):
            raise bad_request("provider_disabled", f"Unsupported provider: Provider {provider} is not enabled")
        default_url, default_scopes = PROVIDERS.get(provider, ("", ""))
        base = str(conf.get("url") or "").rstrip("/")
        auth_url = f"{base}/protocol/openid-connect/auth" if provider == "keycloak" and base else default_url
        if not auth_url:
            raise bad_request("validation_failed", f"Unsupported provider: Provider {provider} needs a url")
        redirect = self._redirect_to(req)
        challenge = req.query.get("code_challenge", "")
        method = req.query.get("code_challenge_method", "").lower()
        flow_id = None
        if challenge:
            pkce = core.pkce_params({"code_challenge": challenge, "code_challenge_method": method})
            assert pkce is not None
            async with self.pool.connection() as conn, conn.transaction():
                flow_id = await core.create_flow_state(conn, None, pkce, provider, "oauth")
        state = pyjwt.encode({"exp": int(time.time()) + 300, "provider": provider, "referrer": redirect,
                              "flow_state_id": flow_id or "", "site_url": self.cfg.site_url},
                             self.keys.secret, algorithm="HS256")
        scopes = " ".join(s for s in (default_scopes, req.query.get("scopes", "")) if s)
        params = {"client_id": str(conf.get("client_id") or ""),
                  "redirect_uri": str(conf.get("redirect_uri") or f"{self.issuer}/callback"),
                  "response_type": "code", "scope": scopes, "state": state}
        return RedirectResponse(f"{auth_url}?{urlencode(params)}", status_code=302)

    async def callback(self, req: Req) -> Response:
        state = req.query.get("state", "")
        target = self.cfg.site_url
        try:
            claims = pyjwt.decode(state, self.keys.secret, algorithms=["HS256"])
            target = core.redirect_allowed(self.cfg, str(claims.get("referrer") or ""))
        except pyjwt.PyJWTError:
            pass
        params = {"error": "server_error", "error_code": "provider_unreachable",
                  "error_description": "The local stack cannot exchange OAuth codes with external providers"}
        return RedirectResponse(f"{target}#{urlencode(params)}", status_code=303)

    # -- MFA --------------------------------------------------------------------------
    async def factor_enroll(self, req: Req) -> Response:
        body = req.body
        factor_type = core.get_str(body, "factor_type")
        friendly = core.get_str(body, "friendly_name")
        issuer = core.get_str(body, "issuer") or (urlsplit(self.cfg.site_url).hostname or "appkit")
        if factor_type not in ("totp", "phone"):
            raise bad_request("validation_failed", "factor_type needs to be totp or phone")
        phone = core.validate_phone(core.get_str(body, "phone")) if factor_type == "phone" else None
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn, lock=True)
            if friendly:
                cur = await conn.execute("select 1 from auth.mfa_factors where user_id = %s and friendly_name = %s",
                                         (user["id"], friendly))
                if await cur.fetchone() is not None:
                    raise unprocessable("mfa_factor_name_conflict",
                                        f"A factor with the friendly name \"{friendly}\" for this user already exists")
            fid = str(uuid.uuid4())
            secret = totp.new_secret() if factor_type == "totp" else None
            await conn.execute(
                "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at,"
                " updated_at, secret, phone) values (%s, %s, %s, %s, 'unverified', now(), now(), %s, %s)",
                (fid, user["id"], friendly or None, factor_type, secret, phone),
            )
            await core.audit(conn, "factor_in_progress", user, req.ip, factor_id=fid)
        out: dict[str, Any] = {"id": fid, "type": factor_type, "friendly_name": friendly}
        if secret is not None:
            uri = totp.uri(secret, issuer, user["email"] or user["phone"] or str(user["id"]))
            out["totp"] = {"qr_code": totp.qr_svg(uri), "secret": secret, "uri": uri}
        else:
            out["phone"] = phone
        return ok(out)

    async def _factor(self, conn: Conn, user: Row, factor_id: str) -> Row:
        if not _is_uuid(factor_id):
            raise not_found("mfa_factor_not_found", "Factor not found")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("select id, factor_type::text, status::text, secret, phone from auth.mfa_factors"
                              " where id = %s and user_id = %s for update", (factor_id, user["id"]))
            factor = await cur.fetchone()
        if factor is None:
            raise not_found("mfa_factor_not_found", "Factor not found")
        return factor

    async def factor_challenge(self, req: Req) -> Response:
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn)
            factor = await self._factor(conn, user, factor_id)
            cid = str(uuid.uuid4())
            otp_hash = None
            if factor["factor_type"] == "phone":
                otp = core.new_otp(6)
                otp_hash = core.token_hash(str(factor["phone"]), otp)
                self._rate("sms_sent", "*", self.cfg.rate_limit.sms_sent, 3600.0, "over_sms_send_rate_limit",
                           "SMS rate limit exceeded")
                await mail.capture(conn, channel="sms", recipient=str(factor["phone"]), kind="mfa_challenge",
                                   otp=otp, user_id=str(user["id"]), sms_template=self.cfg.sms.template)
            cur = await conn.execute(
                "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address, otp_code)"
                " values (%s, %s, now(), %s, %s) returning extract(epoch from created_at)::bigint",
                (cid, factor_id, req.ip or "127.0.0.1", otp_hash),
            )
            row = await cur.fetchone()
            assert row is not None
        return ok({"id": cid, "type": factor["factor_type"], "expires_at": int(row[0]) + MFA_CHALLENGE_EXPIRY})

    async def factor_verify(self, req: Req) -> Response:
        factor_id = req.request.path_params["factor_id"]
        challenge_id = core.get_str(req.body, "challenge_id")
        code = core.get_str(req.body, "code").strip()
        if not challenge_id or not code:
            raise bad_request("validation_failed", "challenge_id and code are required")
        self._ip_limit(req, "token_verifications")
        async with self.pool.connection() as conn, conn.transaction():
            claims, user = await self._current(req, conn)
            factor = await self._factor(conn, user, factor_id)
            if not _is_uuid(challenge_id):
                raise not_found("mfa_factor_not_found", "MFA factor with the provided challenge ID not found")
            cur = await conn.execute(
                "select verified_at, created_at + make_interval(secs => %s) < now(), otp_code"
                " from auth.mfa_challenges where id = %s and factor_id = %s for update",
                (MFA_CHALLENGE_EXPIRY, challenge_id, factor_id),
            )
            ch = await cur.fetchone()
            if ch is None:
                raise not_found("mfa_factor_not_found", "MFA factor with the provided challenge ID not found")
            if ch[0] is not None or ch[1]:
                await conn.execute("delete from auth.mfa_challenges where id = %s", (challenge_id,))
                failure: ApiError | None = unprocessable(
                    "mfa_challenge_expired", f"MFA challenge {challenge_id} has expired, verify against another"
                    " challenge or create a new challenge.")
            else:
                if factor["factor_type"] == "totp":
                    valid = totp.verify(str(factor["secret"]), code)
                else:
                    expected = str(ch[2] or "")
                    valid = hmac.compare_digest(core.token_hash(str(factor["phone"]), code).encode(),
                                                expected.encode())
                failure = None if valid else unprocessable(
                    "mfa_verification_failed",
                    "Invalid TOTP code entered" if factor["factor_type"] == "totp" else "Invalid MFA Phone code"
                    " entered")
            if failure is None:
                sid = claims.get("session_id")
                await conn.execute("update auth.mfa_challenges set verified_at = now() where id = %s",
                                   (challenge_id,))
                await conn.execute("update auth.mfa_factors set status = 'verified', updated_at = now(),"
                                   " last_challenged_at = now() where id = %s", (factor_id,))
                if not sid:
                    raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
                await conn.execute("update auth.sessions set aal = 'aal2', factor_id = %s, updated_at = now()"
                                   " where id = %s", (factor_id, sid))
                method = "totp" if factor["factor_type"] == "totp" else "mfa/phone"
                await conn.execute(
                    "insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at,"
                    " authentication_method) values (gen_random_uuid(), %s, now(), now(), %s)"
                    " on conflict (session_id, authentication_method) do update set updated_at = now()",
                    (sid, method),
                )
                fresh = await core.user_by_id(conn, str(user["id"]))
                assert fresh is not None
                session = await self.tokens.reissue(conn, fresh, str(sid))
                await core.audit(conn, "verification_attempted", fresh, req.ip, factor_id=factor_id)
        if failure is not None:
            raise failure
        return ok(session)

    async def factor_unenroll(self, req: Req) -> Response:
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            claims, user = await self._current(req, conn)
            factor = await self._factor(conn, user, factor_id)
            if factor["status"] == "verified" and claims.get("aal") != "aal2":
                raise unprocessable("insufficient_aal", "AAL2 required to unenroll verified factor")
            await self._delete_factor(conn, user, factor_id)
            await core.audit(conn, "factor_unenrolled", user, req.ip, factor_id=factor_id)
        return ok({"id": factor_id})

    async def _delete_factor(self, conn: Conn, user: Row, factor_id: str) -> None:
        await conn.execute("delete from auth.mfa_factors where id = %s and user_id = %s", (factor_id, user["id"]))
        await conn.execute(
            "update auth.sessions set aal = 'aal1', factor_id = null where user_id = %s and factor_id = %s",
            (user["id"], factor_id),
        )

    # -- admin ----------------------------------------------------------------------
    async def admin_list_users(self, req: Req) -> Response:
        self._require_admin(req)
        try:
            page = int(req.query.get("page") or 1)
            per_page = int(req.query.get("per_page") or 50)
        except ValueError:
            raise bad_request("validation_failed", "page and per_page must be integers") from None
        if page < 1 or per_page < 1:
            raise bad_request("validation_failed", "page and per_page must be positive")
        per_page = min(per_page, 1000)
        flt = req.query.get("filter", "")
        where = "u.deleted_at is null"
        params: list[Any] = []
        if flt:
            where += " and (u.email ilike %s or u.phone ilike %s or u.raw_user_meta_data->>'full_name' ilike %s)"
            like = "%" + flt.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like, like]
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(f"select count(*) from auth.users u where {where}", params)
            total_row = await cur.fetchone()
            total = int(total_row[0]) if total_row else 0
            async with conn.cursor(row_factory=dict_row) as dcur:
                await dcur.execute(f"{core.USER_SELECT} where {where} order by u.created_at desc, u.id"
                                   " limit %s offset %s", [*params, per_page, (page - 1) * per_page])
                rows = await dcur.fetchall()
        last = max(1, -(-total // per_page))
        links = []
        if page < last:
            links.append(f'</admin/users?page={page + 1}&per_page={per_page}>; rel="next"')
        links.append(f'</admin/users?page={last}&per_page={per_page}>; rel="last"')
        return ok({"users": [core.user_json(r) for r in rows], "aud": "authenticated"},
                  headers={"X-Total-Count": str(total), "Link": ", ".join(links)})

    async def _admin_user(self, conn: Conn, user_id: str, *, lock: bool = False) -> Row:
        if not _is_uuid(user_id):
            raise not_found("user_not_found", "User not found")
        user = await core.user_by_id(conn, user_id, lock=lock)
        if user is None:
            raise not_found("user_not_found", "User not found")
        return user

    async def admin_get_user(self, req: Req) -> Response:
        self._require_admin(req)
        async with self.pool.connection() as conn:
            user = await self._admin_user(conn, req.request.path_params["user_id"])
        return ok(core.user_json(user))

    async def _password_hash_from(self, body: dict[str, Any]) -> str | None:
        password = body.get("password")
        given_hash = core.get_str(body, "password_hash")
        if password is not None:
            if not isinstance(password, str):
                raise bad_request("bad_json", "Could not parse request body as JSON: field 'password' must be a"
                                  " string")
            check_strength(self.cfg, password)
            return await self.hasher.hash(password)
        if given_hash:
            if not given_hash.startswith(("$2a$", "$2b$", "$2y$")):
                raise bad_request("validation_failed", "Invalid password hash format: only bcrypt hashes are"
                                  " supported")
            return given_hash
        return None

    def _ban_until(self, body: dict[str, Any]) -> tuple[bool, datetime | None]:
        duration = core.get_str(body, "ban_duration")
        if not duration:
            return False, None
        if duration == "none":
            return True, None
        return True, datetime.now(UTC) + timedelta(seconds=core.parse_go_duration(duration))

    async def admin_create_user(self, req: Req) -> Response:
        self._require_admin(req)
        body = req.body
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        user_id = core.get_str(body, "id")
        if user_id and not _is_uuid(user_id):
            raise bad_request("validation_failed", "id must be a UUID")
        if email:
            email = core.validate_email(email)
        if phone:
            phone = core.validate_phone(phone)
        user_meta = core.get_obj(body, "user_metadata") or core.get_obj(body, "data") or {}
        app_meta = core.get_obj(body, "app_metadata") or {}
        role = core.get_str(body, "role") or "authenticated"
        ban_set, banned_until = self._ban_until(body)
        hashed = await self._password_hash_from(body)
        async with self.pool.connection() as conn, conn.transaction():
            if email and await core.user_by_email(conn, email) is not None:
                raise unprocessable("email_exists", "A user with this email address has already been registered")
            if phone and await core.user_by_phone(conn, phone) is not None:
                raise unprocessable("phone_exists", "A user with this phone number has already been registered")
            if user_id and await core.fetch_user(conn, "u.id = %s", (user_id,)) is not None:
                raise unprocessable("user_already_exists", "User already registered")
            uid = await core.insert_user(
                conn, user_id=user_id or None, email=email or None, phone=phone or None, password_hash=hashed,
                user_metadata=user_meta, app_metadata=app_meta,
                email_confirmed=core.get_bool(body, "email_confirm"),
                phone_confirmed=core.get_bool(body, "phone_confirm"), role=role,
                banned_until=banned_until if ban_set else None,
                is_anonymous=not email and not phone,
            )
            user = await core.user_by_id(conn, uid)
            assert user is not None
            await core.audit(conn, "user_signedup", user, req.ip, provider="admin")
        return ok(core.user_json(user))

    async def admin_update_user(self, req: Req) -> Response:
        self._require_admin(req)
        body = req.body
        email = core.get_str(body, "email")
        phone = core.get_str(body, "phone")
        if email:
            email = core.validate_email(email)
        if phone:
            phone = core.validate_phone(phone)
        user_meta = core.get_obj(body, "user_metadata")
        if user_meta is None:
            user_meta = core.get_obj(body, "data")
        app_meta = core.get_obj(body, "app_metadata")
        role = core.get_str(body, "role")
        ban_set, banned_until = self._ban_until(body)
        hashed = await self._password_hash_from(body)
        async with self.pool.connection() as conn, conn.transaction():
            user = await self._admin_user(conn, req.request.path_params["user_id"], lock=True)
            uid = str(user["id"])
            sets: list[str] = []
            params: list[Any] = []
            if email and email != (user["email"] or ""):
                other = await core.user_by_email(conn, email)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                sets += ["email = %s", "email_change = ''", "is_anonymous = false",
                         "raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email',"
                         " %s::text)"]
                params += [email, email]
            if phone and phone != (user["phone"] or ""):
                other = await core.user_by_phone(conn, phone)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("phone_exists", "A user with this phone number has already been registered")
                sets += ["phone = %s", "phone_change = ''", "is_anonymous = false"]
                params.append(phone)
            if body.get("email_confirm") is not None:
                if core.get_bool(body, "email_confirm"):
                    sets.append("email_confirmed_at = coalesce(email_confirmed_at, now())")
                else:
                    sets.append("email_confirmed_at = null")
            if body.get("phone_confirm") is not None:
                if core.get_bool(body, "phone_confirm"):
                    sets.append("phone_confirmed_at = coalesce(phone_confirmed_at, now())")
                else:
                    sets.append("phone_confirmed_at = null")
            if hashed is not None:
                sets.append("encrypted_password = %s")
                params.append(hashed)
            if role:
                sets.append("role = %s")
                params.append(role)
            if user_meta is not None:
                sets.append("raw_user_meta_data = %s")
                params.append(json.dumps(core.merge_metadata(user["raw_user_meta_data"], user_meta)))
            if app_meta is not None:
                sets.append("raw_app_meta_data = %s")
                params.append(json.dumps(core.merge_metadata(user["raw_app_meta_data"], app_meta)))
            if ban_set:
                sets.append("banned_until = %s")
                params.append(banned_until)
            if sets:
                sets.append("updated_at = now()")
                await conn.execute(f"update auth.users set {', '.join(sets)} where id = %s",
                                   [*params, uid])
            fresh = await core.user_by_id(conn, uid)
            assert fresh is not None
            if email:
                await core.ensure_identity(conn, fresh, "email")
            if phone:
                await core.ensure_identity(conn, fresh, "phone")
            if ban_set and banned_until is not None:
                await conn.execute("delete from auth.sessions where user_id = %s", (uid,))
            fresh = await core.user_by_id(conn, uid)
            assert fresh is not None
            await core.audit(conn, "user_modified", fresh, req.ip, by="admin")
        return ok(core.user_json(fresh))

    async def admin_delete_user(self, req: Req) -> Response:
        self._require_admin(req)
        soft = core.get_bool(req.body, "should_soft_delete")
        async with self.pool.connection() as conn, conn.transaction():
            user = await self._admin_user(conn, req.request.path_params["user_id"], lock=True)
            uid = str(user["id"])
            if soft:
                await conn.execute("delete from auth.identities where user_id = %s", (uid,))
                await conn.execute("delete from auth.sessions where user_id = %s", (uid,))
                await conn.execute("delete from auth.mfa_factors where user_id = %s", (uid,))
                await conn.execute(
                    "update auth.users set deleted_at = now(), updated_at = now(), encrypted_password = '',"
                    " email = case when email is null then null else 'deleted-' || md5(id::text || email) ||"
                    " '@deleted.invalid' end, phone = case when phone is null then null else"
                    " '0' || substr(md5(id::text || phone), 1, 14) end, email_change = '', phone_change = '',"
                    " raw_user_meta_data = '{}' where id = %s", (uid,),
                )
            else:
                await conn.execute("delete from auth.users where id = %s", (uid,))
            await core.audit(conn, "user_deleted", user, req.ip, soft=soft)
        return ok({})

    async def admin_list_factors(self, req: Req) -> Response:
        self._require_admin(req)
        async with self.pool.connection() as conn:
            user = await self._admin_user(conn, req.request.path_params["user_id"])
        return ok(core.user_json(user).get("factors", []))

    async def admin_delete_factor(self, req: Req) -> Response:
        self._require_admin(req)
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            user = await self._admin_user(conn, req.request.path_params["user_id"])
            await self._factor(conn, user, factor_id)
            await self._delete_factor(conn, user, factor_id)
            await core.audit(conn, "factor_deleted", user, req.ip, factor_id=factor_id)
        return ok({"id": factor_id})

    async def invite(self, req: Req) -> Response:
        self._require_admin(req)
        email = core.validate_email(core.get_str(req.body, "email"))
        data = core.get_obj(req.body, "data") or {}
        redirect = self._redirect_to(req)
        async with self.pool.connection() as conn, conn.transaction():
            user = await core.user_by_email(conn, email, lock=True)
            if user is not None and user["email_confirmed_at"] is not None:
                raise unprocessable("email_exists", "A user with this email address has already been registered")
            if user is None:
                uid = await core.insert_user(conn, email=email, user_metadata=data, invited=True)
            else:
                uid = str(user["id"])
                await conn.execute("update auth.users set invited_at = now(), updated_at = now() where id = %s",
                                   (uid,))
            user = await core.user_by_id(conn, uid)
            assert user is not None
            await self._send(conn, user, kind="invite", token_type="confirmation_token", recipient=email,
                             channel="email", redirect_to=redirect)
            await core.audit(conn, "user_invited", user, req.ip)
            fresh = await core.user_by_id(conn, uid)
            assert fresh is not None
        return ok(core.user_json(fresh))

    async def admin_generate_link(self, req: Req) -> Response:
        self._require_admin(req)
        body = req.body
        kind = core.get_str(body, "type")
        email = core.validate_email(core.get_str(body, "email"))
        data = core.get_obj(body, "data") or {}
        redirect = self._redirect_to(req)
        types = {"signup": "confirmation_token", "invite": "confirmation_token", "magiclink": "recovery_token",
                 "recovery": "recovery_token", "email_change_current": "email_change_token_current",
                 "email_change_new": "email_change_token_new"}
        if kind not in types:
            raise bad_request("validation_failed", "Invalid email action link type requested")
        hashed: str | None = None
        if kind == "signup":
            password = core.get_str(body, "password")
            if not password:
                raise unprocessable("validation_failed", "Signup requires a valid password")
            check_strength(self.cfg, password)
            hashed = await self.hasher.hash(password)
        new_email = ""
        if kind.startswith("email_change"):
            new_email = core.validate_email(core.get_str(body, "new_email"))
        async with self.pool.connection() as conn, conn.transaction():
            user = await core.user_by_email(conn, email, lock=True)
            if kind in ("signup", "invite"):
                if user is not None and user["email_confirmed_at"] is not None:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                if user is None:
                    uid = await core.insert_user(conn, email=email, password_hash=hashed, user_metadata=data,
                                                 invited=kind == "invite")
                    user = await core.user_by_id(conn, uid)
                elif kind == "invite":
                    await conn.execute("update auth.users set invited_at = now() where id = %s", (user["id"],))
            elif user is None:
                raise not_found("user_not_found", "User with this email not found")
            assert user is not None
            uid = str(user["id"])
            recipient = email
            if new_email:
                other = await core.user_by_email(conn, new_email)
                if other is not None:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                await conn.execute("update auth.users set email_change = %s where id = %s", (new_email, uid))
                if kind == "email_change_new":
                    recipient = new_email
            otp = core.new_otp(self.cfg.email.otp_length)
            digest = await core.store_otp(conn, uid, types[kind], recipient, otp)
            verify_type = {"email_change_current": "email_change", "email_change_new": "email_change"}.get(kind, kind)
            fresh = await core.user_by_id(conn, uid)
            assert fresh is not None
            await core.audit(conn, "user_recovery_requested" if kind == "recovery" else "user_invited", fresh, req.ip)
        link = core.verify_link(self.issuer, digest, verify_type, redirect, False)
        out = core.user_json(fresh)
        out.update({"action_link": link, "email_otp": otp, "hashed_token": digest, "redirect_to": redirect,
                    "verification_type": kind})
        return ok(out)


def is_banned(user: Row) -> bool:
    return core.is_banned(user)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _duration(value: str, default: float) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        return default


def _obfuscated_user(email: str, phone: str, data: dict[str, Any]) -> dict[str, Any]:
    """What signup answers for an already-confirmed address when confirmations are on (no enumeration)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    provider = "email" if email else "phone"
    return {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": email, "phone": phone,
            "confirmation_sent_at": now, "app_metadata": {"provider": provider, "providers": [provider]},
            "user_metadata": data, "identities": [], "created_at": now, "updated_at": now, "is_anonymous": False}
