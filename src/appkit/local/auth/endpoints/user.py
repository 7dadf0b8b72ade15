"""The signed-in user: read it, update it, reauthenticate."""

from __future__ import annotations

import json

from starlette.responses import Response

from appkit.local.auth.endpoints.base import EndpointBase, durable
from appkit.local.auth.errors import (
    bad_request,
    forbidden,
    unprocessable,
)
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import get_obj, get_str, merge_metadata, validate_email, validate_phone
from appkit.local.auth.otp import consume_otp, create_flow_state, pkce_params, token_hash
from appkit.local.auth.passwords import check_strength
from appkit.local.auth.users import (
    USER_JSON_SQL,
    audit,
    ensure_identity,
    user_by_email,
    user_by_id,
    user_by_phone,
    user_json,
)


class UserEndpoints(EndpointBase):
    """The signed-in user's own endpoints."""

    async def get_user(self, req: AuthRequest) -> Response:
        """The hot path: one query, the JSON built by Postgres and passed through."""
        claims = self._claims(req)
        sub, session_id = self._subject(claims)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"select ({USER_JSON_SQL})::text,"
                " exists(select 1 from auth.sessions s where s.id = %s and s.user_id = u.id)"
                " from auth.users u where u.id = %s and u.deleted_at is null", (session_id, sub),
            )
            row = await cur.fetchone()
        if row is None:
            raise forbidden("user_not_found", "User from sub claim in JWT does not exist")
        if session_id is not None and not row[1]:
            raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
        return Response(row[0], media_type="application/json")

    async def update_user(self, req: AuthRequest) -> Response:
        body = req.body
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        password = body.get("password")
        if password is not None and not isinstance(password, str):
            raise bad_request("bad_json", "Could not parse request body as JSON: field 'password' must be a string")
        nonce = get_str(body, "nonce")
        data = get_obj(body, "data")
        app_data = body.get("app_metadata")
        if app_data is not None:
            raise forbidden("not_admin", "Updating app_metadata requires the service role")
        pkce = pkce_params(body)
        redirect = self._redirect_to(req)
        if email:
            email = validate_email(email)
        if phone:
            phone = validate_phone(phone)
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
            await durable(conn)
            claims, user = await self._current(req, conn, lock=True)
            uid = str(user["id"])
            if password is not None:
                if nonce:
                    target = user["email"] or user["phone"] or ""
                    await consume_otp(conn, ["reauthentication_token"], self.cfg.email.otp_expiry,
                                           digest=token_hash(target, nonce))
                elif self.cfg.email.secure_password_change and claims.get("aal") != "aal2":
                    raise bad_request("reauthentication_needed", "Password update requires reauthentication")
                await conn.execute("update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
                                   (new_hash, uid))
                await audit(conn, "user_updated_password", user, req.ip)
            if data is not None:
                merged = merge_metadata(user["raw_user_meta_data"], data)
                await conn.execute("update auth.users set raw_user_meta_data = %s, updated_at = now() where id = %s",
                                   (json.dumps(merged), uid))
            if email and email != (user["email"] or "").lower():
                other = await user_by_email(conn, email)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                if not self.cfg.email.enable_confirmations:
                    await conn.execute(
                        "update auth.users set email = %s, email_confirmed_at = now(), email_change = '',"
                        " is_anonymous = false, updated_at = now(), raw_user_meta_data ="
                        " coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email', %s::text)"
                        " where id = %s", (email, email, uid),
                    )
                    fresh = await user_by_id(conn, uid)
                    assert fresh is not None
                    await ensure_identity(conn, fresh, "email")
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
                        await create_flow_state(conn, uid, pkce, "email", "email_change")
                    await self._send(conn, user, kind="email_change", token_type="email_change_token_new",
                                     recipient=email, channel="email", redirect_to=redirect, pkce=pkce is not None)
                    if self.cfg.email.double_confirm_changes and user["email"] and user["email_confirmed_at"]:
                        await self._send(conn, user, kind="email_change", token_type="email_change_token_current",
                                         recipient=user["email"], channel="email", redirect_to=redirect,
                                         pkce=pkce is not None, check_frequency=False)
            if phone and phone != (user["phone"] or ""):
                other = await user_by_phone(conn, phone)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("phone_exists", "A user with this phone number has already been registered")
                if not self.cfg.sms.enable_confirmations:
                    await conn.execute(
                        "update auth.users set phone = %s, phone_confirmed_at = now(), phone_change = '',"
                        " is_anonymous = false, updated_at = now() where id = %s", (phone, uid),
                    )
                    fresh = await user_by_id(conn, uid)
                    assert fresh is not None
                    await ensure_identity(conn, fresh, "phone")
                else:
                    await conn.execute("update auth.users set phone_change = %s, updated_at = now() where id = %s",
                                       (phone, uid))
                    await self._send(conn, user, kind="phone_change", token_type="phone_change_token",
                                     recipient=phone, channel="sms")
            fresh = await user_by_id(conn, uid)
            assert fresh is not None
            if data is not None or email or phone:
                await audit(conn, "user_modified", fresh, req.ip)
        return ok(user_json(fresh))

    async def reauthenticate(self, req: AuthRequest) -> Response:
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
