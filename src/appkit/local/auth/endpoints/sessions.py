"""Signing up, signing in (``/token``: password, refresh token, PKCE) and signing out."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.responses import Response

from appkit.local.auth.batch import Coalescer
from appkit.local.auth.endpoints.base import EndpointBase, durable
from appkit.local.auth.errors import (
    ApiError,
    OAuthError,
    bad_request,
    forbidden,
    not_found,
    unprocessable,
)
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import get_obj, get_str, validate_email, validate_phone
from appkit.local.auth.otp import create_flow_state, pkce_matches, pkce_params
from appkit.local.auth.passwords import check_strength
from appkit.local.auth.sessions import REUSE_ERROR
from appkit.local.auth.users import audit, insert_user, is_banned, user_by_email, user_by_id, user_by_phone, user_json

log = logging.getLogger("appkit.local.auth")

FLOW_STATE_EXPIRY = 300
#: refresh grants run at most this many statements at once; requests arriving meanwhile go
#: together in the next statement (a statement's start-up dominates a refresh's cost in
#: Postgres: ~0.5 ms alone, ~0.2 ms per token in a batch of 8)
REFRESH_WORKERS = 2


class SessionEndpoints(EndpointBase):
    """Sign-up, the ``/token`` grants and sign-out."""

    _refresh_batches: Coalescer[str, str | None]

    async def signup(self, req: AuthRequest) -> Response:
        body = req.body
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        password = get_str(body, "password")
        data = get_obj(body, "data") or {}
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
            email = validate_email(email)
        else:
            if not self.cfg.sms.enable_signup:
                raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
            phone = validate_phone(phone)
        if not password:
            raise unprocessable("validation_failed", "Signup requires a valid password")
        check_strength(self.cfg, password)
        pkce = pkce_params(body)
        hashed = await self.hasher.hash(password)
        redirect = self._redirect_to(req)
        autoconfirm = not (self.cfg.email.enable_confirmations if email else self.cfg.sms.enable_confirmations)
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)  # an acknowledged account must not vanish in a crash
            existing = await (user_by_email(conn, email, lock=True) if email
                              else user_by_phone(conn, phone, lock=True))
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
                uid = await insert_user(conn, email=email or None, phone=phone or None, password_hash=hashed,
                                             user_metadata=data, email_confirmed=bool(email) and autoconfirm,
                                             phone_confirmed=bool(phone) and autoconfirm)
                created_user = await user_by_id(conn, uid)
                assert created_user is not None
                user = created_user
                await audit(conn, "user_signedup", user, req.ip, provider="email" if email else "phone")
            if autoconfirm:
                session = await self.tokens.create_session(conn, user, "password", ip=req.ip,
                                                           user_agent=req.user_agent)
                return ok(session)
            if pkce:
                await create_flow_state(conn, str(user["id"]), pkce, "email", "email/signup")
            if email:
                await self._send(conn, user, kind="signup", token_type="confirmation_token", recipient=email,
                                 channel="email", redirect_to=redirect, pkce=pkce is not None)
            else:
                await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone,
                                 channel="sms")
            fresh = await user_by_id(conn, str(user["id"]))
            assert fresh is not None
            return ok(user_json(fresh))

    async def _anonymous(self, req: AuthRequest, data: dict[str, Any]) -> Response:
        if not self.cfg.enable_anonymous_sign_ins:
            raise unprocessable("anonymous_provider_disabled", "Anonymous sign-ins are disabled")
        self._ip_limit(req, "anonymous_users")
        async with self.pool.connection() as conn, conn.transaction():
            uid = await insert_user(conn, user_metadata=data, is_anonymous=True)
            user = await user_by_id(conn, uid)
            assert user is not None
            await audit(conn, "user_signedup", user, req.ip, provider="anonymous")
            return ok(await self.tokens.create_session(conn, user, "anonymous", ip=req.ip,
                                                       user_agent=req.user_agent))

    async def token(self, req: AuthRequest) -> Response:
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

    async def _password_grant(self, req: AuthRequest) -> Response:
        self._ip_limit(req, "sign_in_sign_ups")
        email = get_str(req.body, "email")
        phone = get_str(req.body, "phone")
        password = get_str(req.body, "password")
        if not email and not phone:
            raise bad_request("validation_failed", "missing email or phone")
        if not password:
            raise bad_request("validation_failed", "missing password")
        async with self.pool.connection() as conn:
            if email:
                user = await user_by_email(conn, email.strip())
            else:
                try:
                    user = await user_by_phone(conn, validate_phone(phone))
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
            await audit(conn, "login", user, req.ip, provider="email" if email else "phone")
        try:
            check_strength(self.cfg, password)
        except ApiError as weak:  # GoTrue tells the client when the password breaks the current rules
            reasons = weak.extra.get("weak_password", {}).get("reasons", ["length"])
            session["weak_password"] = {"reasons": reasons, "message": weak.msg}
        return ok(session)

    async def _refresh_grant(self, req: AuthRequest) -> Response:
        self._ip_limit(req, "token_refresh")
        token = get_str(req.body, "refresh_token")
        if not token:
            raise bad_request("validation_failed", "refresh_token required")
        fast = await self._refresh_batches(token)
        if fast is not None:
            return Response(fast, media_type="application/json")
        async with self.pool.connection() as conn, conn.transaction():
            session = await self.tokens.refresh(conn, token)
        if session is None:
            raise bad_request(*REUSE_ERROR)
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

    async def _pkce_grant(self, req: AuthRequest) -> Response:
        code = get_str(req.body, "auth_code")
        verifier = get_str(req.body, "code_verifier")
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
            if not pkce_matches(row[1], row[2], verifier):
                raise forbidden("bad_code_verifier", "code challenge does not match previously saved code verifier")
            user = await user_by_id(conn, str(row[0]))
            if user is None:
                raise not_found("user_not_found", "User not found")
            if is_banned(user):
                raise bad_request("user_banned", "User is banned")
            method = {"email/signup": "otp", "magiclink": "otp"}.get(str(row[3]), str(row[3]))
            session = await self.tokens.create_session(conn, user, method, ip=req.ip, user_agent=req.user_agent)
        return ok(session)

    async def logout(self, req: AuthRequest) -> Response:
        scope = req.query.get("scope", "global")
        if scope not in ("global", "local", "others"):
            raise bad_request("validation_failed", "Unsupported logout scope \"" + scope + "\"")
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            claims, user = await self._current(req, conn)
            sid = claims.get("session_id")
            if scope == "local" and sid:
                await conn.execute("delete from auth.sessions where id = %s", (sid,))
            elif scope == "others":
                await conn.execute("delete from auth.sessions where user_id = %s and id is distinct from %s",
                                   (user["id"], sid))
            else:
                await conn.execute("delete from auth.sessions where user_id = %s", (user["id"],))
            await audit(conn, "logout", user, req.ip, scope=scope)
        return Response(status_code=204)


def _obfuscated_user(email: str, phone: str, data: dict[str, Any]) -> dict[str, Any]:
    """What signup answers for an already-confirmed address when confirmations are on (no enumeration)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    provider = "email" if email else "phone"
    return {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": email, "phone": phone,
            "confirmation_sent_at": now, "app_metadata": {"provider": provider, "providers": [provider]},
            "user_metadata": data, "identities": [], "created_at": now, "updated_at": now, "is_anonymous": False}
