"""The service-role admin API: users, their factors, invites and generated links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from starlette.responses import Response

from appkit.local.auth.endpoints.base import EndpointBase, durable
from appkit.local.auth.errors import (
    bad_request,
    not_found,
    unprocessable,
)
from appkit.local.auth.factors import delete_factor, fetch_factor
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import (
    get_bool,
    get_obj,
    get_str,
    is_uuid,
    merge_metadata,
    parse_go_duration,
    validate_email,
    validate_phone,
)
from appkit.local.auth.otp import new_otp, store_otp, verify_link
from appkit.local.auth.passwords import check_strength
from appkit.local.auth.users import (
    USER_SELECT,
    Conn,
    Row,
    audit,
    ensure_identity,
    fetch_user,
    insert_user,
    user_by_email,
    user_by_id,
    user_by_phone,
    user_json,
)


class AdminEndpoints(EndpointBase):
    """The admin API (service role only)."""

    async def admin_list_users(self, req: AuthRequest) -> Response:
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
                await dcur.execute(f"{USER_SELECT} where {where} order by u.created_at desc, u.id"
                                   " limit %s offset %s", [*params, per_page, (page - 1) * per_page])
                rows = await dcur.fetchall()
        last = max(1, -(-total // per_page))
        links = []
        if page < last:
            links.append(f'</admin/users?page={page + 1}&per_page={per_page}>; rel="next"')
        links.append(f'</admin/users?page={last}&per_page={per_page}>; rel="last"')
        return ok({"users": [user_json(r) for r in rows], "aud": "authenticated"},
                  headers={"X-Total-Count": str(total), "Link": ", ".join(links)})

    async def _admin_user(self, conn: Conn, user_id: str, *, lock: bool = False) -> Row:
        if not is_uuid(user_id):
            raise not_found("user_not_found", "User not found")
        user = await user_by_id(conn, user_id, lock=lock)
        if user is None:
            raise not_found("user_not_found", "User not found")
        return user

    async def admin_get_user(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        async with self.pool.connection() as conn:
            user = await self._admin_user(conn, req.request.path_params["user_id"])
        return ok(user_json(user))

    async def _password_hash_from(self, body: dict[str, Any]) -> str | None:
        password = body.get("password")
        given_hash = get_str(body, "password_hash")
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
        duration = get_str(body, "ban_duration")
        if not duration:
            return False, None
        if duration == "none":
            return True, None
        return True, datetime.now(UTC) + timedelta(seconds=parse_go_duration(duration))

    async def admin_create_user(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        body = req.body
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        user_id = get_str(body, "id")
        if user_id and not is_uuid(user_id):
            raise bad_request("validation_failed", "id must be a UUID")
        if email:
            email = validate_email(email)
        if phone:
            phone = validate_phone(phone)
        user_meta = get_obj(body, "user_metadata") or get_obj(body, "data") or {}
        app_meta = get_obj(body, "app_metadata") or {}
        role = get_str(body, "role") or "authenticated"
        ban_set, banned_until = self._ban_until(body)
        hashed = await self._password_hash_from(body)
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            if email and await user_by_email(conn, email) is not None:
                raise unprocessable("email_exists", "A user with this email address has already been registered")
            if phone and await user_by_phone(conn, phone) is not None:
                raise unprocessable("phone_exists", "A user with this phone number has already been registered")
            if user_id and await fetch_user(conn, "u.id = %s", (user_id,)) is not None:
                raise unprocessable("user_already_exists", "User already registered")
            uid = await insert_user(
                conn, user_id=user_id or None, email=email or None, phone=phone or None, password_hash=hashed,
                user_metadata=user_meta, app_metadata=app_meta,
                email_confirmed=get_bool(body, "email_confirm"),
                phone_confirmed=get_bool(body, "phone_confirm"), role=role,
                banned_until=banned_until if ban_set else None,
                is_anonymous=not email and not phone,
            )
            return await self._audited_user(conn, uid, req, "user_signedup", provider="admin")

    async def admin_update_user(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        body = req.body
        email = get_str(body, "email")
        phone = get_str(body, "phone")
        if email:
            email = validate_email(email)
        if phone:
            phone = validate_phone(phone)
        user_meta = get_obj(body, "user_metadata")
        if user_meta is None:
            user_meta = get_obj(body, "data")
        app_meta = get_obj(body, "app_metadata")
        role = get_str(body, "role")
        ban_set, banned_until = self._ban_until(body)
        hashed = await self._password_hash_from(body)
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            user = await self._admin_user(conn, req.request.path_params["user_id"], lock=True)
            uid = str(user["id"])
            sets: list[str] = []
            params: list[Any] = []
            if email and email != (user["email"] or ""):
                other = await user_by_email(conn, email)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                sets += ["email = %s", "email_change = ''", "is_anonymous = false",
                         "raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email',"
                         " %s::text)"]
                params += [email, email]
            if phone and phone != (user["phone"] or ""):
                other = await user_by_phone(conn, phone)
                if other is not None and str(other["id"]) != uid:
                    raise unprocessable("phone_exists", "A user with this phone number has already been registered")
                sets += ["phone = %s", "phone_change = ''", "is_anonymous = false"]
                params.append(phone)
            if body.get("email_confirm") is not None:
                if get_bool(body, "email_confirm"):
                    sets.append("email_confirmed_at = coalesce(email_confirmed_at, now())")
                else:
                    sets.append("email_confirmed_at = null")
            if body.get("phone_confirm") is not None:
                if get_bool(body, "phone_confirm"):
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
                params.append(json.dumps(merge_metadata(user["raw_user_meta_data"], user_meta)))
            if app_meta is not None:
                sets.append("raw_app_meta_data = %s")
                params.append(json.dumps(merge_metadata(user["raw_app_meta_data"], app_meta)))
            if ban_set:
                sets.append("banned_until = %s")
                params.append(banned_until)
            if sets:
                sets.append("updated_at = now()")
                await conn.execute(f"update auth.users set {', '.join(sets)} where id = %s",
                                   [*params, uid])
            fresh = await user_by_id(conn, uid)
            assert fresh is not None
            if email:
                await ensure_identity(conn, fresh, "email")
            if phone:
                await ensure_identity(conn, fresh, "phone")
            if ban_set and banned_until is not None:
                await conn.execute("delete from auth.sessions where user_id = %s", (uid,))
            return await self._audited_user(conn, uid, req, "user_modified", by="admin")

    async def _audited_user(self, conn: Conn, uid: str, req: AuthRequest, action: str, **traits: Any) -> Response:
        """The tail of an admin create/update: the user as it now is, audited, as the response."""
        user = await user_by_id(conn, uid)
        assert user is not None
        await audit(conn, action, user, req.ip, **traits)
        return ok(user_json(user))

    async def admin_delete_user(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        soft = get_bool(req.body, "should_soft_delete")
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
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
            await audit(conn, "user_deleted", user, req.ip, soft=soft)
        return ok({})

    async def admin_list_factors(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        async with self.pool.connection() as conn:
            user = await self._admin_user(conn, req.request.path_params["user_id"])
        return ok(user_json(user).get("factors", []))

    async def admin_delete_factor(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            user = await self._admin_user(conn, req.request.path_params["user_id"])
            await fetch_factor(conn, user, factor_id)
            await delete_factor(conn, user, factor_id)
            await audit(conn, "factor_deleted", user, req.ip, factor_id=factor_id)
        return ok({"id": factor_id})

    async def invite(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        email = validate_email(get_str(req.body, "email"))
        data = get_obj(req.body, "data") or {}
        redirect = self._redirect_to(req)
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            user = await user_by_email(conn, email, lock=True)
            if user is not None and user["email_confirmed_at"] is not None:
                raise unprocessable("email_exists", "A user with this email address has already been registered")
            if user is None:
                new_id = await self._before_user_created(conn, req.ip, email=email, user_metadata=data)
                uid = await insert_user(conn, user_id=new_id, email=email, user_metadata=data, invited=True)
            else:
                uid = str(user["id"])
                await conn.execute("update auth.users set invited_at = now(), updated_at = now() where id = %s",
                                   (uid,))
            user = await user_by_id(conn, uid)
            assert user is not None
            await self._send(conn, user, kind="invite", token_type="confirmation_token", recipient=email,
                             channel="email", redirect_to=redirect)
            await audit(conn, "user_invited", user, req.ip)
            fresh = await user_by_id(conn, uid)
            assert fresh is not None
        return ok(user_json(fresh))

    async def admin_generate_link(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        body = req.body
        kind = get_str(body, "type")
        email = validate_email(get_str(body, "email"))
        data = get_obj(body, "data") or {}
        redirect = self._redirect_to(req)
        types = {"signup": "confirmation_token", "invite": "confirmation_token", "magiclink": "recovery_token",
                 "recovery": "recovery_token", "email_change_current": "email_change_token_current",
                 "email_change_new": "email_change_token_new"}
        if kind not in types:
            raise bad_request("validation_failed", "Invalid email action link type requested")
        hashed: str | None = None
        if kind == "signup":
            password = get_str(body, "password")
            if not password:
                raise unprocessable("validation_failed", "Signup requires a valid password")
            check_strength(self.cfg, password)
            hashed = await self.hasher.hash(password)
        new_email = ""
        if kind.startswith("email_change"):
            new_email = validate_email(get_str(body, "new_email"))
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            user = await user_by_email(conn, email, lock=True)
            if kind in ("signup", "invite"):
                if user is not None and user["email_confirmed_at"] is not None:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                if user is None:
                    new_id = await self._before_user_created(conn, req.ip, email=email, user_metadata=data)
                    uid = await insert_user(conn, user_id=new_id, email=email, password_hash=hashed,
                                            user_metadata=data, invited=kind == "invite")
                    user = await user_by_id(conn, uid)
                elif kind == "invite":
                    await conn.execute("update auth.users set invited_at = now() where id = %s", (user["id"],))
            elif user is None:
                raise not_found("user_not_found", "User with this email not found")
            assert user is not None
            uid = str(user["id"])
            recipient = email
            if new_email:
                other = await user_by_email(conn, new_email)
                if other is not None:
                    raise unprocessable("email_exists", "A user with this email address has already been registered")
                await conn.execute("update auth.users set email_change = %s where id = %s", (new_email, uid))
                if kind == "email_change_new":
                    recipient = new_email
            otp = new_otp(self.cfg.email.otp_length)
            digest = await store_otp(conn, uid, types[kind], recipient, otp)
            verify_type = {"email_change_current": "email_change", "email_change_new": "email_change"}.get(kind, kind)
            fresh = await user_by_id(conn, uid)
            assert fresh is not None
            await audit(conn, "user_recovery_requested" if kind == "recovery" else "user_invited", fresh, req.ip)
        link = verify_link(self.issuer, digest, verify_type, redirect, False)
        out = user_json(fresh)
        out.update({"action_link": link, "email_otp": otp, "hashed_token": digest, "redirect_to": redirect,
                    "verification_type": kind})
        return ok(out)
