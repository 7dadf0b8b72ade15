"""What every auth endpoint family builds on: the service's state, the caller's user, and
sending one-time codes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from appkit.local.auth import mail
from appkit.local.auth.errors import GoTrueError, forbidden
from appkit.local.auth.guards import Guards
from appkit.local.auth.hooks import metadata
from appkit.local.auth.http import AuthRequest
from appkit.local.auth.inputs import get_str, redirect_allowed
from appkit.local.auth.otp import new_otp, store_otp, verify_link
from appkit.local.auth.passwords import Hasher
from appkit.local.auth.ratelimit import parse_duration
from appkit.local.auth.sessions import Tokens
from appkit.local.auth.users import USER_COLS, USER_EXTRAS, Conn, Row, user_json
from appkit.local.context import StackContext


async def durable(conn: Conn) -> None:
    """Make the current transaction's commit wait until its WAL is on disk.

    The auth pool commits with ``synchronous_commit = off`` (sign-ins and token rotations
    are the hottest writes, and losing the last ~200 ms of them to a crash only makes
    those users sign in again). What must never come undone -- a sign-up, a logout or
    session revocation, a password change, a ban, a user's deletion, a factor's removal,
    an admin's write -- calls this first, inside its transaction."""
    await conn.execute("set local synchronous_commit = on")


class EndpointBase(Guards):
    """The state the endpoint families share (config, keys, tokens, the connection pool) and
    the helpers more than one family calls."""

    def __init__(self, ctx: StackContext) -> None:
        super().__init__(ctx.config.auth, ctx.keys)
        self.ctx = ctx
        self.issuer = ctx.api_url.rstrip("/") + "/auth/v1"
        self.tokens = Tokens(self.cfg, self.keys, self.issuer)
        self.hasher = Hasher()
        self._pool: AsyncConnectionPool | None = None
        self._email_frequency = _duration(self.cfg.email.max_frequency, 1.0)
        self._sms_frequency = _duration(self.cfg.sms.max_frequency, 5.0)

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise GoTrueError(503, "unexpected_failure", "auth service is not started")
        return self._pool

    async def _current(self, req: AuthRequest, conn: Conn, *, lock: bool = False) -> tuple[dict[str, Any], Row]:
        """The caller's claims and user (``user_not_found`` / ``session_not_found`` -> 403)."""
        claims = self._claims(req)
        sub, session_id = self._subject(claims)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"select {USER_COLS}, {USER_EXTRAS},"
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

    async def _before_user_created(self, conn: Conn, ip: str | None, *, email: str | None = None,
                                   phone: str | None = None, user_metadata: dict[str, Any] | None = None,
                                   is_anonymous: bool = False) -> str:
        """The new user's id, after GoTrue's before_user_created hook (when enabled) saw the
        user about to be created (``{"metadata", "user"}``); a hook error refuses the sign-up."""
        uid = str(uuid.uuid4())
        if not self.tokens.hooks.enabled("before_user_created"):
            return uid
        now = datetime.now(UTC).isoformat()
        providers = ["anonymous"] if is_anonymous else [p for p, v in (("email", email), ("phone", phone)) if v]
        user = {"id": uid, "aud": "authenticated", "role": "authenticated", "email": email or "",
                "phone": phone or "", "app_metadata": {"provider": providers[0], "providers": providers}
                if providers else {}, "user_metadata": user_metadata or {}, "identities": [],
                "created_at": now, "updated_at": now, "is_anonymous": is_anonymous}
        await self.tokens.hooks.invoke("before_user_created",
                                       {"metadata": metadata("before_user_created", ip), "user": user}, conn)
        return uid

    def _redirect_to(self, req: AuthRequest) -> str:
        return redirect_allowed(self.cfg, req.query.get("redirect_to") or get_str(req.body, "redirect_to"))

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
        otp = new_otp(self.cfg.email.otp_length if channel == "email" else 6)
        digest = await store_otp(conn, str(user["id"]), token_type, recipient, otp)
        link = None
        target = redirect_to or self.cfg.site_url
        hook = "send_email" if channel == "email" else "send_sms"
        if self.tokens.hooks.enabled(hook):  # GoTrue hands the message to the hook instead of sending it
            payload: dict[str, Any] = {"metadata": metadata(hook, None), "user": user_json(user)}
            if channel == "email":
                payload["email_data"] = {
                    "token": otp, "token_hash": digest, "redirect_to": target, "email_action_type": kind,
                    "site_url": self.cfg.site_url, "token_new": "", "token_hash_new": "",
                    "old_email": "", "old_phone": "", "provider": "", "factor_type": ""}
            else:
                payload["sms"] = {"otp": otp, "phone": recipient}
            await self.tokens.hooks.invoke(hook, payload, conn)
            return digest
        if channel == "email" and kind != "reauthentication":
            link = verify_link(self.issuer, digest, kind, target, pkce)
        await mail.capture(conn, channel=channel, recipient=recipient, kind=kind, otp=otp, link=link,
                           token_hash=digest, redirect_to=target, user_id=str(user["id"]),
                           sms_template=self.cfg.sms.template)
        return digest


def _duration(value: str, default: float) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        return default
