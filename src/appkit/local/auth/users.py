"""Users as GoTrue stores and renders them: column lists, the user JSON, fetching and inserting
users and identities, the audit log."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.AsyncConnection[Any]


Row = dict[str, Any]


INSTANCE_ID = "00000000-0000-0000-0000-000000000000"


USER_COLS = (
    "u.id, u.aud, u.role, u.email, u.phone, u.encrypted_password, u.email_confirmed_at, u.phone_confirmed_at,"
    " u.confirmed_at, u.confirmation_sent_at, u.recovery_sent_at, u.email_change, u.email_change_sent_at,"
    " u.phone_change, u.phone_change_sent_at, u.invited_at, u.last_sign_in_at, u.raw_app_meta_data,"
    " u.raw_user_meta_data, u.created_at, u.updated_at, u.is_anonymous, u.is_sso_user, u.banned_until,"
    " u.deleted_at, u.email_change_confirm_status, u.reauthentication_sent_at"
)


USER_EXTRAS = (
    "(select coalesce(json_agg(json_build_object('identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,"
    " 'identity_data', i.identity_data, 'provider', i.provider, 'last_sign_in_at', i.last_sign_in_at,"
    " 'created_at', i.created_at, 'updated_at', i.updated_at, 'email', i.email) order by i.created_at), '[]'::json)"
    " from auth.identities i where i.user_id = u.id) as identities,"
    " (select coalesce(json_agg(json_build_object('id', f.id, 'friendly_name', f.friendly_name, 'factor_type',"
    " f.factor_type, 'status', f.status, 'created_at', f.created_at, 'updated_at', f.updated_at, 'phone', f.phone,"
    " 'last_challenged_at', f.last_challenged_at) order by f.created_at), '[]'::json)"
    " from auth.mfa_factors f where f.user_id = u.id) as factors"
)


USER_SELECT = f"select {USER_COLS}, {USER_EXTRAS} from auth.users u"


def _ts_sql(col: str) -> str:
    return f"to_char({col} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


#: the user as :func:`user_json` renders it, built by Postgres (``u`` = the auth.users row)
USER_JSON_SQL = (
    "jsonb_build_object('id', u.id, 'aud', coalesce(u.aud, ''), 'role', coalesce(u.role, ''),"
    " 'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),"
    " 'app_metadata', coalesce(u.raw_app_meta_data, '{}'), 'user_metadata', coalesce(u.raw_user_meta_data, '{}'),"
    " 'identities', (select coalesce(jsonb_agg(jsonb_build_object('identity_id', i.id, 'id', i.provider_id,"
    " 'user_id', i.user_id, 'identity_data', i.identity_data, 'provider', i.provider,"
    f" 'last_sign_in_at', {_ts_sql('i.last_sign_in_at')}, 'created_at', {_ts_sql('i.created_at')},"
    f" 'updated_at', {_ts_sql('i.updated_at')}, 'email', i.email) order by i.created_at), '[]')"
    " from auth.identities i where i.user_id = u.id),"
    f" 'created_at', {_ts_sql('u.created_at')}, 'updated_at', {_ts_sql('u.updated_at')},"
    " 'is_anonymous', u.is_anonymous)"
    " || jsonb_strip_nulls(jsonb_build_object("
    + ", ".join(
        f"'{name}', {_ts_sql('u.' + name)}"
        for name in ("email_confirmed_at", "phone_confirmed_at", "confirmation_sent_at", "confirmed_at",
                     "recovery_sent_at", "email_change_sent_at", "phone_change_sent_at", "invited_at",
                     "last_sign_in_at", "banned_until", "deleted_at")
    )
    + ", 'new_email', nullif(u.email_change, ''), 'new_phone', nullif(u.phone_change, ''),"
    " 'is_sso_user', case when u.is_sso_user then true end))"
    " || coalesce((select jsonb_build_object('factors', jsonb_agg(jsonb_strip_nulls(jsonb_build_object("
    " 'id', f.id, 'friendly_name', f.friendly_name, 'factor_type', f.factor_type, 'status', f.status,"
    f" 'created_at', {_ts_sql('f.created_at')}, 'updated_at', {_ts_sql('f.updated_at')}, 'phone', f.phone,"
    f" 'last_challenged_at', {_ts_sql('f.last_challenged_at')})) order by f.created_at))"
    " from auth.mfa_factors f where f.user_id = u.id having count(*) > 0), '{}')"
)


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_ts(value: Any) -> Any:
    if isinstance(value, str) and value.endswith("+00:00"):
        return value[:-6] + "Z"
    return value


def is_banned(user: Row) -> bool:
    until = user.get("banned_until")
    return until is not None and until > datetime.now(UTC)


def user_json(user: Row) -> dict[str, Any]:
    """A user as GoTrue's ``/user`` and admin endpoints render it."""
    out: dict[str, Any] = {
        "id": str(user["id"]),
        "aud": user["aud"] or "",
        "role": user["role"] or "",
        "email": user["email"] or "",
    }
    optional = [
        ("email_confirmed_at", ts(user["email_confirmed_at"])),
    ]
    out.update({k: v for k, v in optional if v})
    out["phone"] = user["phone"] or ""
    for key in ("phone_confirmed_at", "confirmation_sent_at", "confirmed_at", "recovery_sent_at"):
        value = ts(user[key])
        if value:
            out[key] = value
    if user["email_change"]:
        out["new_email"] = user["email_change"]
    if user["email_change_sent_at"]:
        out["email_change_sent_at"] = ts(user["email_change_sent_at"])
    if user["phone_change"]:
        out["new_phone"] = user["phone_change"]
    if user["phone_change_sent_at"]:
        out["phone_change_sent_at"] = ts(user["phone_change_sent_at"])
    for key in ("invited_at", "last_sign_in_at"):
        value = ts(user[key])
        if value:
            out[key] = value
    out["app_metadata"] = user["raw_app_meta_data"] or {}
    out["user_metadata"] = user["raw_user_meta_data"] or {}
    identities = user.get("identities") or []
    out["identities"] = [
        {**i, "identity_id": str(i["identity_id"]), "user_id": str(i["user_id"]),
         "created_at": _json_ts(i["created_at"]), "updated_at": _json_ts(i["updated_at"]),
         "last_sign_in_at": _json_ts(i["last_sign_in_at"])}
        for i in identities
    ]
    factors = user.get("factors") or []
    if factors:
        out["factors"] = [
            {k: (_json_ts(v) if k.endswith("_at") else v) for k, v in f.items()
             if v is not None or k in ("friendly_name",)}
            for f in factors
        ]
    out["created_at"] = ts(user["created_at"])
    out["updated_at"] = ts(user["updated_at"])
    out["is_anonymous"] = bool(user["is_anonymous"])
    if user.get("is_sso_user"):
        out["is_sso_user"] = True
    if user["banned_until"] is not None:
        out["banned_until"] = ts(user["banned_until"])
    if user["deleted_at"] is not None:
        out["deleted_at"] = ts(user["deleted_at"])
    return out


async def fetch_user(conn: Conn, where: str, params: tuple[Any, ...], *, lock: bool = False) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{USER_SELECT} where {where}" + (" for update of u" if lock else ""), params)
        return await cur.fetchone()


async def user_by_id(conn: Conn, user_id: str, *, lock: bool = False) -> Row | None:
    return await fetch_user(conn, "u.id = %s and u.deleted_at is null", (user_id,), lock=lock)


async def user_by_email(conn: Conn, email: str, *, lock: bool = False) -> Row | None:
    return await fetch_user(
        conn, "lower(u.email) = lower(%s) and u.is_sso_user = false and u.deleted_at is null", (email,), lock=lock
    )


async def user_by_phone(conn: Conn, phone: str, *, lock: bool = False) -> Row | None:
    return await fetch_user(conn, "u.phone = %s and u.deleted_at is null", (phone,), lock=lock)


async def insert_user(conn: Conn, *, user_id: str | None = None, email: str | None = None,
                      phone: str | None = None, password_hash: str | None = None,
                      user_metadata: dict[str, Any] | None = None, app_metadata: dict[str, Any] | None = None,
                      email_confirmed: bool = False, phone_confirmed: bool = False, is_anonymous: bool = False,
                      role: str = "authenticated", invited: bool = False,
                      banned_until: datetime | None = None) -> str:
    """Insert a user and its email/phone identities (one ``auth.users`` insert: triggers fire)."""
    uid = user_id or str(uuid.uuid4())
    providers: list[str] = []
    if email:
        providers.append("email")
    if phone:
        providers.append("phone")
    app_meta: dict[str, Any] = {}
    if is_anonymous:
        app_meta = {"provider": "anonymous", "providers": ["anonymous"]}
    elif providers:
        app_meta = {"provider": providers[0], "providers": providers}
    app_meta.update(app_metadata or {})
    user_meta = dict(user_metadata or {})
    if email or phone:
        user_meta.update({"sub": uid, "email_verified": email_confirmed and bool(email),
                          "phone_verified": phone_confirmed and bool(phone)})
        if email:
            user_meta["email"] = email
    await conn.execute(
        "insert into auth.users (instance_id, id, aud, role, email, phone, encrypted_password, email_confirmed_at,"
        " phone_confirmed_at, invited_at, raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at,"
        " updated_at, is_anonymous, is_sso_user, banned_until, confirmation_token, recovery_token,"
        " email_change_token_new, email_change)"
        " values (%s, %s, 'authenticated', %s, %s, %s, %s, case when %s then now() end, case when %s then now() end,"
        " case when %s then now() end, %s, %s, false, now(), now(), %s, false, %s, '', '', '', '')",
        (INSTANCE_ID, uid, role, email, phone, password_hash or "", email_confirmed, phone_confirmed, invited,
         json.dumps(app_meta), json.dumps(user_meta), is_anonymous, banned_until),
    )
    if email:
        data = {"sub": uid, "email": email, "email_verified": email_confirmed, "phone_verified": False}
        await conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
            " values (%s, %s, %s, 'email', now(), now())", (uid, uid, json.dumps(data)),
        )
    if phone:
        data = {"sub": uid, "phone": phone, "email_verified": False, "phone_verified": phone_confirmed}
        await conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
            " values (%s, %s, %s, 'phone', now(), now())",
            (uid, uid, json.dumps(data)),
        )
    return uid


async def ensure_identity(conn: Conn, user: Row, provider: str) -> None:
    """Add the email/phone identity a user lacks (after an email/phone change), or sync its data."""
    uid = str(user["id"])
    value = user["email"] if provider == "email" else user["phone"]
    if not value:
        return
    verified = (user["email_confirmed_at"] if provider == "email" else user["phone_confirmed_at"]) is not None
    data = {"sub": uid, provider: value, "email_verified": provider == "email" and verified,
            "phone_verified": provider == "phone" and verified}
    cur = await conn.execute(
        "update auth.identities set identity_data = identity_data || %s::jsonb, updated_at = now()"
        " where user_id = %s and provider = %s", (json.dumps(data), uid, provider),
    )
    if cur.rowcount == 0:
        pid = uid  # GoTrue: email and phone identities both use the user id as provider_id
        await conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
            " values (%s, %s, %s, %s, now(), now()) on conflict (provider_id, provider) do nothing",
            (pid, uid, json.dumps(data), provider),
        )
        await conn.execute(
            "update auth.users set raw_app_meta_data = jsonb_set(coalesce(raw_app_meta_data, '{}'), '{providers}',"
            " (select coalesce(jsonb_agg(distinct p), '[]') from (select jsonb_array_elements_text("
            "coalesce(raw_app_meta_data->'providers', '[]')) p union select %s) x)) where id = %s",
            (provider, uid),
        )


async def audit(conn: Conn, action: str, actor: Row | None, ip: str | None, **traits: Any) -> None:
    payload = {"action": action, "actor_id": str(actor["id"]) if actor else "",
               "actor_username": (actor.get("email") or actor.get("phone") or "") if actor else "",
               "log_type": "account" if action.startswith("user_") else "token", "traits": traits}
    await conn.execute(
        "insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)"
        " values (%s, gen_random_uuid(), %s, now(), %s)", (INSTANCE_ID, json.dumps(payload), ip or ""),
    )
