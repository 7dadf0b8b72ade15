"""One-time codes and links: ``/otp``, ``/magiclink``, ``/recover``, ``/resend`` and ``/verify``."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.responses import RedirectResponse, Response

from appkit.local.auth.endpoints.base import EndpointBase
from appkit.local.auth.errors import (
    GoTrueError,
    bad_request,
    forbidden,
    unprocessable,
)
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import get_bool, get_obj, get_str, validate_email, validate_phone
from appkit.local.auth.otp import VERIFY_TYPES, consume_otp, create_flow_state, issue_auth_code, pkce_params, token_hash
from appkit.local.auth.users import (
    Conn,
    Row,
    audit,
    ensure_identity,
    fetch_user,
    insert_user,
    is_banned,
    user_by_email,
    user_by_id,
    user_by_phone,
)


class OtpEndpoints(EndpointBase):
    """Sending and verifying one-time codes and links."""

    async def recover(self, req: AuthRequest) -> Response:
        email = validate_email(get_str(req.body, "email"))
        pkce = pkce_params(req.body)
        redirect = self._redirect_to(req)
        async with self.pool.connection() as conn, conn.transaction():
            user = await user_by_email(conn, email, lock=True)
            if user is not None:
                if pkce:
                    await create_flow_state(conn, str(user["id"]), pkce, "email", "recovery")
                await self._send(conn, user, kind="recovery", token_type="recovery_token", recipient=email,
                                 channel="email", redirect_to=redirect, pkce=pkce is not None)
                await audit(conn, "user_recovery_requested", user, req.ip)
        return ok({})

    async def magiclink(self, req: AuthRequest) -> Response:
        req.body.setdefault("create_user", True)
        return await self.otp(req)

    async def otp(self, req: AuthRequest) -> Response:
        body = req.body
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        create = get_bool(body, "create_user", True)
        data = get_obj(body, "data") or {}
        if email and phone:
            raise bad_request("validation_failed", "Only an email address or phone number should be provided")
        if not email and not phone:
            raise bad_request("validation_failed", "An email address or phone number is required")
        pkce = pkce_params(body)
        redirect = self._redirect_to(req)
        if email:
            email = validate_email(email)
        else:
            phone = validate_phone(phone)
        async with self.pool.connection() as conn, conn.transaction():
            user = await (user_by_email(conn, email, lock=True) if email
                          else user_by_phone(conn, phone, lock=True))
            created = False
            if user is None:
                if not create or not self.cfg.enable_signup:
                    raise unprocessable("otp_disabled", "Signups not allowed for otp")
                if email and not self.cfg.email.enable_signup:
                    raise unprocessable("email_provider_disabled", "Email signups are disabled")
                if phone and not self.cfg.sms.enable_signup:
                    raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
                new_id = await self._before_user_created(conn, req.ip, email=email or None, phone=phone or None,
                                                         user_metadata=data)
                uid = await insert_user(conn, user_id=new_id, email=email or None, phone=phone or None,
                                        user_metadata=data)
                user = await user_by_id(conn, uid)
                assert user is not None
                created = True
                await audit(conn, "user_signedup", user, req.ip, provider="email" if email else "phone")
            if is_banned(user):
                raise bad_request("user_banned", "User is banned")
            if email:
                confirmed = user["email_confirmed_at"] is not None
                kind, token_type = ("magiclink", "recovery_token") if confirmed and not created else (
                    "signup", "confirmation_token")
                if pkce:
                    await create_flow_state(conn, str(user["id"]), pkce, "email",
                                                 "magiclink" if kind == "magiclink" else "email/signup")
                await self._send(conn, user, kind=kind, token_type=token_type, recipient=email, channel="email",
                                 redirect_to=redirect, pkce=pkce is not None)
                return ok({})
            await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone, channel="sms")
            return ok({"message_id": f"appkit-{uuid.uuid4()}"})

    async def resend(self, req: AuthRequest) -> Response:
        body = req.body
        kind = get_str(body, "type")
        email = get_str(body, "email")
        phone = get_str(body, "phone")
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
                email = validate_email(email)
                user = await user_by_email(conn, email, lock=True)
                if user is not None and user["email_confirmed_at"] is None:
                    await self._send(conn, user, kind="signup", token_type="confirmation_token", recipient=email,
                                     channel="email", redirect_to=redirect)
            elif kind == "email_change":
                email = validate_email(email)
                user = await fetch_user(conn, "lower(u.email_change) = lower(%s) and u.deleted_at is null",
                                             (email,), lock=True)
                if user is not None:
                    await self._send(conn, user, kind="email_change", token_type="email_change_token_new",
                                     recipient=email, channel="email", redirect_to=redirect)
            elif kind == "sms":
                phone = validate_phone(phone)
                user = await user_by_phone(conn, phone, lock=True)
                if user is not None and user["phone_confirmed_at"] is None:
                    await self._send(conn, user, kind="sms", token_type="confirmation_token", recipient=phone,
                                     channel="sms")
            else:
                phone = validate_phone(phone)
                user = await fetch_user(conn, "u.phone_change = %s and u.deleted_at is null", (phone,),
                                             lock=True)
                if user is not None:
                    await self._send(conn, user, kind="phone_change", token_type="phone_change_token",
                                     recipient=phone, channel="sms")
        return ok({"message_id": f"appkit-{uuid.uuid4()}"} if phone else {})

    async def _verify(self, conn: Conn, kind: str, *, digest: str, recipient: str | None,
                      ip: str | None, user_agent: str | None) -> tuple[Row, dict[str, Any] | None, str | None]:
        """Consume the code and apply its effect; (user, session or None when a second email
        change confirmation is pending, PKCE auth code or None)."""
        types = VERIFY_TYPES.get(kind)
        if types is None:
            raise bad_request("validation_failed", "Verify requires a verification type")
        user_id, token_type, relates_to = await consume_otp(conn, types, self.cfg.email.otp_expiry,
                                                                 digest=digest, recipient=recipient)
        user = await user_by_id(conn, user_id, lock=True)
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
        fresh = await user_by_id(conn, user_id)
        assert fresh is not None
        if token_type.startswith("email_change"):
            await ensure_identity(conn, fresh, "email")
        elif token_type == "phone_change_token":
            await ensure_identity(conn, fresh, "phone")
        elif fresh["email_confirmed_at"] is not None and fresh["email"]:
            await ensure_identity(conn, fresh, "email")
        if fresh["phone_confirmed_at"] is not None and fresh["phone"] and token_type == "confirmation_token":
            await ensure_identity(conn, fresh, "phone")
        fresh = await user_by_id(conn, user_id)
        assert fresh is not None
        await audit(conn, "user_confirmation_requested" if kind == "signup" else "login", fresh, ip,
                         provider=kind)
        code = await issue_auth_code(conn, user_id)
        session = await self.tokens.create_session(conn, fresh, method, ip=ip, user_agent=user_agent)
        return fresh, session, code

    async def verify_post(self, req: AuthRequest) -> Response:
        self._ip_limit(req, "token_verifications")
        body = req.body
        kind = get_str(body, "type")
        token = get_str(body, "token")
        hash_param = get_str(body, "token_hash")
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        if not kind:
            raise bad_request("validation_failed", "Verify requires a verification type")
        if kind not in VERIFY_TYPES:
            raise bad_request("validation_failed", f"Unsupported verification type {kind!r}")
        recipient: str | None = None
        if hash_param:
            digest = hash_param.removeprefix("pkce_")
        elif token:
            if email:
                recipient = validate_email(email)
            elif phone:
                recipient = validate_phone(phone)
            elif len(token) > 20:  # a link's token hash passed as "token"
                digest = token.removeprefix("pkce_")
            else:
                raise bad_request("validation_failed", "Only an email address or phone number should be provided"
                                  " on verify")
            if recipient is not None:
                digest = token_hash(recipient, token.strip())
        else:
            raise bad_request("validation_failed", "Verify requires a token or a token hash")
        async with self.pool.connection() as conn, conn.transaction():
            _, session, _ = await self._verify(conn, kind, digest=digest, recipient=recipient, ip=req.ip,
                                               user_agent=req.user_agent)
        if session is None:
            return ok({"msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
                       "code": "200"})
        return ok(session)

    async def verify_get(self, req: AuthRequest) -> Response:
        kind = req.query.get("type", "")
        token = req.query.get("token", "")
        redirect = self._redirect_to(req)
        try:
            self._ip_limit(req, "token_verifications")
            if not token or kind not in VERIFY_TYPES:
                raise bad_request("validation_failed", "Verify requires a token and a verification type")
            pkce = token.startswith("pkce_")
            async with self.pool.connection() as conn, conn.transaction():
                _, session, code = await self._verify(conn, kind, digest=token.removeprefix("pkce_"),
                                                      recipient=None, ip=req.ip, user_agent=req.user_agent)
        except GoTrueError as err:
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
