"""Shared pieces of the auth service: input validation, users as GoTrue renders them,
sessions and tokens, one-time codes, PKCE flow state."""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
from psycopg import AsyncRawCursor
from psycopg.rows import dict_row

from appkit.local.auth.errors import ApiError, bad_request, forbidden, not_found, unprocessable
from appkit.local.config import AuthConfig
from appkit.local.keys import JWTKeys

Conn = psycopg.AsyncConnection[Any]
Row = dict[str, Any]

INSTANCE_ID = "00000000-0000-0000-0000-000000000000"
_EMAIL_RE = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_PHONE_RE = re.compile(r"^[1-9][0-9]{1,14}$")

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


# -- formatting -----------------------------------------------------------------
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


# -- input ----------------------------------------------------------------------------
def json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("bad_json", f"Could not parse request body as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("bad_json", "Could not parse request body as JSON: expected a JSON object")
    if b"\\u" in raw:  # escapes may encode lone surrogates, which no database or hash accepts
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request("bad_json", "Could not parse request body as JSON: invalid Unicode") from None
    return body


def get_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be a string")
    return value


def get_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be a boolean")
    return value


def get_obj(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("bad_json", f"Could not parse request body as JSON: field {key!r} must be an object")
    return value


def validate_email(email: str) -> str:
    email = email.strip()
    if not email:
        raise bad_request("validation_failed", "An email address is required")
    if len(email) > 255 or not _EMAIL_RE.match(email):
        raise bad_request("validation_failed", "Unable to validate email address: invalid format")
    return email.lower()


def validate_phone(phone: str) -> str:
    cleaned = phone.strip().replace(" ", "").replace("-", "").removeprefix("+")
    if not _PHONE_RE.match(cleaned):
        raise bad_request("validation_failed", "Invalid phone number format (E.164 required)")
    return cleaned


def client_ip(host: str | None) -> str | None:
    """The client address in canonical form (None when absent or not an IP address)."""
    return _canonical_ip(host) if host else None


@functools.lru_cache(maxsize=1024)
def _canonical_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def merge_metadata(current: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's metadata update: keys are set, keys set to null are removed."""
    out = dict(current or {})
    for k, v in update.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def parse_go_duration(value: str) -> float:
    from appkit.local.auth.ratelimit import parse_duration

    try:
        return parse_duration(value)
    except ValueError:
        raise bad_request("validation_failed", f"invalid format for ban duration: {value!r}") from None


def redirect_allowed(cfg: AuthConfig, url: str | None) -> str:
    """``url`` when the config allows it (same host as ``site_url`` or an allow-list glob), else ``site_url``."""
    if not url:
        return cfg.site_url
    try:
        target = urlsplit(url)
        site = urlsplit(cfg.site_url)
    except ValueError:
        return cfg.site_url
    if target.scheme in ("http", "https") and target.netloc and target.netloc == site.netloc:
        return url
    for pattern in cfg.additional_redirect_urls:
        if url == pattern or fnmatch.fnmatchcase(url, pattern) or (
            pattern.endswith("/**") and url.startswith(pattern[:-3])
        ):
            return url
    return cfg.site_url


def token_hash(recipient: str, otp: str) -> str:
    return hashlib.sha224((recipient + otp).encode("utf-8")).hexdigest()


def new_otp(length: int = 6) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(16)


def pkce_matches(method: str, challenge: str, verifier: str) -> bool:
    if method == "s256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return hmac.compare_digest(computed.encode(), challenge.encode())
    return hmac.compare_digest(verifier.encode(), challenge.encode())


def pkce_params(body: dict[str, Any]) -> tuple[str, str] | None:
    challenge = get_str(body, "code_challenge")
    method = get_str(body, "code_challenge_method").lower()
    if not challenge and not method:
        return None
    if not challenge or method not in ("s256", "plain"):
        raise bad_request("validation_failed", "PKCE flow requires code_challenge_method and code_challenge")
    if not 43 <= len(challenge) <= 128:
        raise bad_request("validation_failed", "code challenge has to be between 43 and 128 characters")
    return challenge, method


# -- database -----------------------------------------------------------------
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


_HS256_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def sign(keys: JWTKeys, claims: dict[str, Any]) -> str:
    """``keys.sign`` (asymmetric keys when configured); the HS256 case computed directly,
    byte-for-byte what PyJWT produces, without PyJWT's per-call key checks (hot path)."""
    if keys.signing_keys:
        return keys.sign(claims)
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    signing_input = _HS256_HEADER + b"." + payload
    sig = base64.urlsafe_b64encode(hmac.digest(keys.secret.encode(), signing_input, "sha256")).rstrip(b"=")
    return (signing_input + b"." + sig).decode("ascii")


#: the refresh grant's common case (see ``Tokens.refresh_fast``): which tokens qualify ...
_REFRESH_LIVE = (
    " join auth.sessions s on s.id = rt.session_id join auth.users u on u.id = s.user_id"
    " where rt.revoked = false and u.deleted_at is null and (u.banned_until is null or u.banned_until <= now())"
    " and (s.not_after is null or s.not_after > now())"
)
#: ... and what each answers: the access token's claims (but the times) and the user's JSON,
#: from ``ss`` (the updated session) and ``u`` (its user)
_REFRESH_ANSWER = (
    " jsonb_build_object('aud', coalesce(nullif(u.aud, ''), 'authenticated'), 'sub', u.id,"
    " 'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),"
    " 'app_metadata', coalesce(u.raw_app_meta_data, '{}'),"
    " 'user_metadata', coalesce(u.raw_user_meta_data, '{}'),"
    " 'role', coalesce(nullif(u.role, ''), 'authenticated'), 'aal', coalesce(ss.aal::text, 'aal1'),"
    " 'amr', coalesce((select jsonb_agg(jsonb_build_object('method', c.authentication_method,"
    " 'timestamp', extract(epoch from c.updated_at)::bigint) order by c.updated_at desc)"
    " from auth.mfa_amr_claims c where c.session_id = ss.id), '[]'),"
    " 'session_id', ss.id, 'is_anonymous', u.is_anonymous)::text,"
    f" ({USER_JSON_SQL})::text"
)
_REFRESH_ROTATE = (
    " r as (update auth.refresh_tokens set revoked = true, updated_at = now() where id {match} (select id from t)),"
    " n as (insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
    " parent, session_id) select {instance}, {new}, t.user_id::text, false, now(), now(), t.token, t.session_id"
    " from t),"
    " ss as (update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now()"
    " where id {match} (select session_id from t) returning id, aal)"
)
#: one token ($1; $2 instance, $3 the new token); answers in the batch statement's shape
_REFRESH_ONE_SQL = (
    "with t as (select rt.id, rt.token, rt.session_id, s.user_id from auth.refresh_tokens rt"
    + _REFRESH_LIVE + " and rt.token = $1 for update of rt, s),"
    + _REFRESH_ROTATE.format(match="=", instance="$2", new="$3")
    + " select 1," + _REFRESH_ANSWER + " from ss join auth.users u on u.id = (select user_id from t)"
)
#: distinct tokens ($1, $2 the new token for each, $3 instance); rows locked in id order, so
#: two batches never wait on each other in a cycle; answers carry the token's ordinal
_REFRESH_MANY_SQL = (
    "with t as (select q.ord, q.new, rt.id, rt.token, rt.session_id, s.user_id"
    " from unnest($1::text[], $2::text[]) with ordinality as q(token, new, ord)"
    " join auth.refresh_tokens rt on rt.token = q.token"
    + _REFRESH_LIVE + " order by rt.id for update of rt, s),"
    + _REFRESH_ROTATE.format(match="in", instance="$3", new="t.new")
    + " select t.ord," + _REFRESH_ANSWER
    + " from t join ss on ss.id = t.session_id join auth.users u on u.id = t.user_id"
)


class Tokens:
    """Sessions, refresh tokens and access tokens as GoTrue issues them."""

    def __init__(self, cfg: AuthConfig, keys: JWTKeys, issuer: str) -> None:
        self.cfg = cfg
        self.keys = keys
        self.issuer = issuer

    def access_token(self, user: Row, session_id: str, aal: str, amr: list[dict[str, Any]]) -> tuple[str, int]:
        now = int(time.time())
        exp = now + self.cfg.jwt_expiry
        claims = {
            "aud": user["aud"] or "authenticated", "exp": exp, "iat": now, "iss": self.issuer,
            "sub": str(user["id"]), "email": user["email"] or "", "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"] or "authenticated", "aal": aal, "amr": amr, "session_id": session_id,
            "is_anonymous": bool(user["is_anonymous"]),
        }
        return sign(self.keys, claims), exp

    def session_json(self, user: Row, session_id: str, aal: str, amr: list[dict[str, Any]],
                     refresh_token: str) -> dict[str, Any]:
        token, exp = self.access_token(user, session_id, aal, amr)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.cfg.jwt_expiry,
                "expires_at": exp, "refresh_token": refresh_token, "user": user_json(user)}

    async def create_session(self, conn: Conn, user: Row, method: str, *, ip: str | None = None,
                             user_agent: str | None = None) -> dict[str, Any]:
        """A new session (aal1) with its first refresh token; updates ``last_sign_in_at``."""
        session_id = str(uuid.uuid4())
        refresh = new_refresh_token()
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "with s as (insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)"
                " values (%s, %s, now(), now(), 'aal1', %s, %s) returning id),"
                " a as (insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at,"
                " authentication_method) select gen_random_uuid(), s.id, now(), now(), %s from s),"
                " r as (insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at,"
                " updated_at, session_id) select %s, %s, %s, false, now(), now(), s.id from s),"
                " i as (update auth.identities set last_sign_in_at = now() where user_id = %s),"
                " u as (update auth.users set last_sign_in_at = now(), updated_at = now() where id = %s returning *)"
                f" select {USER_COLS}, {USER_EXTRAS} from u",
                (session_id, user["id"], user_agent, ip, method, INSTANCE_ID, refresh, str(user["id"]),
                 user["id"], user["id"]),
            )
            fresh = await cur.fetchone()
        assert fresh is not None
        amr = [{"method": method, "timestamp": int(time.time())}]
        return self.session_json(fresh, session_id, "aal1", amr, refresh)

    async def session_amr(self, conn: Conn, session_id: str) -> tuple[str, list[dict[str, Any]]]:
        cur = await conn.execute(
            "select s.aal::text, coalesce((select json_agg(json_build_object('method', c.authentication_method,"
            " 'timestamp', extract(epoch from c.updated_at)::bigint) order by c.updated_at desc)"
            " from auth.mfa_amr_claims c where c.session_id = s.id), '[]'::json) from auth.sessions s where s.id = %s",
            (session_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
        return str(row[0] or "aal1"), list(row[1])

    async def refresh_fast(self, conn: Conn, tokens: list[str]) -> list[str | None]:
        """The common case of the refresh grant for several tokens in one statement (its own
        transaction): each active token of a live session of a usable user is rotated; its
        answer is the session JSON, with the user rendered by Postgres. None for a token where
        anything else applies (revoked, unknown, banned, expired, or the same token twice in
        ``tokens``): :meth:`refresh` then decides, after this statement has committed."""
        # each distinct token once (its position in ``unique``); a repeat is answered None
        slots: list[int | None] = []
        position: dict[str, int] = {}
        for token in tokens:
            slots.append(None if token in position else position.setdefault(token, len(position)))
        unique = list(position)
        news = [new_refresh_token() for _ in unique]
        # a raw cursor ($n placeholders): the statements are longer than psycopg caches parsed
        # queries for, and this is the hottest write path of the service
        cur = AsyncRawCursor(conn)
        if len(unique) == 1:
            await cur.execute(_REFRESH_ONE_SQL, (unique[0], INSTANCE_ID, news[0]))
        else:
            await cur.execute(_REFRESH_MANY_SQL, (unique, news, INSTANCE_ID))
        rows = await cur.fetchall()
        done: dict[int, str] = {}
        now = int(time.time())
        exp = now + self.cfg.jwt_expiry
        for ordinal, claims_json, user_json in rows:
            base = json.loads(claims_json)
            claims = {"aud": base["aud"], "exp": exp, "iat": now, "iss": self.issuer, "sub": base["sub"],
                      "email": base["email"], "phone": base["phone"], "app_metadata": base["app_metadata"],
                      "user_metadata": base["user_metadata"], "role": base["role"], "aal": base["aal"],
                      "amr": base["amr"], "session_id": base["session_id"], "is_anonymous": base["is_anonymous"]}
            new = news[ordinal - 1]
            head = json.dumps({"access_token": sign(self.keys, claims), "token_type": "bearer",
                               "expires_in": self.cfg.jwt_expiry, "expires_at": exp, "refresh_token": new},
                              separators=(",", ":"))
            done[ordinal - 1] = head[:-1] + ',"user":' + str(user_json) + "}"
        return [None if slot is None else done.get(slot) for slot in slots]

    async def refresh(self, conn: Conn, token: str) -> dict[str, Any] | None:
        """The ``refresh_token`` grant, with GoTrue's rotation and reuse-interval rules.

        Runs inside the caller's transaction; raises :class:`ApiError`. When a revoked token
        is reused after the reuse interval, the session's tokens are revoked and None is
        returned: the caller commits, then answers ``refresh_token_already_used``.
        """
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select rt.id as rt_id, rt.token as rt_token, rt.revoked as rt_revoked, rt.updated_at as rt_updated_at,"
                " rt.session_id as rt_session_id, s.aal::text as s_aal, s.not_after as s_not_after,"
                " (rt.updated_at + make_interval(secs => %s) > now()) as rt_reusable,"
                " coalesce((select json_agg(json_build_object('method', c.authentication_method,"
                " 'timestamp', extract(epoch from c.updated_at)::bigint) order by c.updated_at desc)"
                " from auth.mfa_amr_claims c where c.session_id = s.id), '[]'::json) as s_amr,"
                f" {USER_COLS}, {USER_EXTRAS}"
                " from auth.refresh_tokens rt join auth.sessions s on s.id = rt.session_id"
                " join auth.users u on u.id = s.user_id"
                " where rt.token = %s for update of s",
                (self.cfg.refresh_token_reuse_interval, token),
            )
            row = await cur.fetchone()
        if row is None:
            raise bad_request("refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        if row["deleted_at"] is not None:
            raise bad_request("refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        if is_banned(row):
            raise bad_request("user_banned", "User is banned")
        if row["s_not_after"] is not None and row["s_not_after"] < datetime.now(UTC):
            raise bad_request("session_expired", "Invalid Refresh Token: Session Expired")
        session_id = str(row["rt_session_id"])
        if row["rt_revoked"]:
            if self.cfg.enable_refresh_token_rotation and not row["rt_reusable"]:
                await conn.execute(
                    "update auth.refresh_tokens set revoked = true, updated_at = now()"
                    " where session_id = %s and revoked = false", (session_id,),
                )
                return None
            cur2 = await conn.execute(
                "select token, parent from auth.refresh_tokens where session_id = %s and revoked = false"
                " order by id desc limit 1", (session_id,),
            )
            active = await cur2.fetchone()
            if active is None:
                # the family was revoked (reuse detected earlier): nothing in it may be used again
                return None
            if active[1] is not None and hmac.compare_digest(
                str(active[1]).encode(), str(row["rt_token"]).encode()
            ):
                return self.session_json(row, session_id, row["s_aal"] or "aal1", list(row["s_amr"]), active[0])
        new = new_refresh_token()
        await conn.execute(
            "with r as (update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s),"
            " n as (insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
            " parent, session_id) values (%s, %s, %s, false, now(), now(), %s, %s))"
            " update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now() where id = %s",
            (row["rt_id"], INSTANCE_ID, new, str(row["id"]), row["rt_token"], session_id, session_id),
        )
        return self.session_json(row, session_id, row["s_aal"] or "aal1", list(row["s_amr"]), new)

    async def reissue(self, conn: Conn, user: Row, session_id: str) -> dict[str, Any]:
        """New access + refresh token for an existing session (after MFA verification)."""
        new = new_refresh_token()
        await conn.execute(
            "with r as (update auth.refresh_tokens set revoked = true, updated_at = now()"
            " where session_id = %s and revoked = false)"
            " insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
            " session_id) values (%s, %s, %s, false, now(), now(), %s)",
            (session_id, INSTANCE_ID, new, str(user["id"]), session_id),
        )
        aal, amr = await self.session_amr(conn, session_id)
        return self.session_json(user, session_id, aal, amr, new)


REUSE_ERROR = ("refresh_token_already_used", "Invalid Refresh Token: Already Used")


# -- one-time tokens ------------------------------------------------------------------
USER_TOKEN_COLUMN = {
    "confirmation_token": ("confirmation_token", "confirmation_sent_at"),
    "recovery_token": ("recovery_token", "recovery_sent_at"),
    "email_change_token_new": ("email_change_token_new", "email_change_sent_at"),
    "email_change_token_current": ("email_change_token_current", "email_change_sent_at"),
    "phone_change_token": ("phone_change_token", "phone_change_sent_at"),
    "reauthentication_token": ("reauthentication_token", "reauthentication_sent_at"),
}

#: verify ``type`` -> one-time token types it accepts
VERIFY_TYPES = {
    "signup": ["confirmation_token"],
    "invite": ["confirmation_token"],
    "magiclink": ["recovery_token", "confirmation_token"],
    "email": ["confirmation_token", "recovery_token"],
    "recovery": ["recovery_token"],
    "email_change": ["email_change_token_new", "email_change_token_current"],
    "sms": ["confirmation_token"],
    "phone_change": ["phone_change_token"],
}


async def store_otp(conn: Conn, user_id: str, token_type: str, recipient: str, otp: str) -> str:
    digest = token_hash(recipient, otp)
    await conn.execute(
        "insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to, created_at, updated_at)"
        " values (gen_random_uuid(), %s, %s, %s, %s, localtimestamp, localtimestamp)"
        " on conflict (user_id, token_type) do update set token_hash = excluded.token_hash,"
        " relates_to = excluded.relates_to, created_at = localtimestamp, updated_at = localtimestamp",
        (user_id, token_type, digest, recipient),
    )
    column, sent_at = USER_TOKEN_COLUMN[token_type]
    await conn.execute(
        f"update auth.users set {column} = %s, {sent_at} = now(), updated_at = now() where id = %s",
        (digest, user_id),
    )
    return digest


async def consume_otp(conn: Conn, token_types: list[str], otp_expiry: int, *, digest: str,
                      recipient: str | None = None) -> tuple[str, str, str]:
    """Find and delete a live one-time token; (user_id, token_type, relates_to) or ``otp_expired``."""
    sql = (
        "delete from auth.one_time_tokens where id = (select id from auth.one_time_tokens where token_hash = %s"
        " and token_type::text = any(%s) and created_at > localtimestamp - make_interval(secs => %s)"
    )
    params: list[Any] = [digest, token_types, otp_expiry]
    if recipient is not None:
        sql += " and lower(relates_to) = lower(%s)"
        params.append(recipient)
    sql += " limit 1 for update) returning user_id, token_type::text, relates_to"
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    if row is None:
        raise forbidden("otp_expired", "Token has expired or is invalid")
    user_id, token_type, relates_to = str(row[0]), str(row[1]), str(row[2])
    column, _ = USER_TOKEN_COLUMN[token_type]
    await conn.execute(f"update auth.users set {column} = '' where id = %s", (user_id,))
    return user_id, token_type, relates_to


def verify_link(issuer: str, digest: str, kind: str, redirect_to: str, pkce: bool) -> str:
    token = f"pkce_{digest}" if pkce else digest
    return f"{issuer}/verify?" + urlencode({"token": token, "type": kind, "redirect_to": redirect_to})


async def create_flow_state(conn: Conn, user_id: str | None, challenge: tuple[str, str], provider: str,
                            method: str) -> str:
    fid = str(uuid.uuid4())
    await conn.execute(
        "insert into auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, provider_type,"
        " created_at, updated_at, authentication_method) values (%s, %s, %s, %s, %s, %s, now(), now(), %s)",
        (fid, user_id, str(uuid.uuid4()), challenge[1], challenge[0], provider, method),
    )
    return fid


async def issue_auth_code(conn: Conn, user_id: str) -> str | None:
    """The auth code of the user's newest pending PKCE flow (marked issued), or None."""
    cur = await conn.execute(
        "update auth.flow_state set auth_code_issued_at = now(), updated_at = now() where id = ("
        " select id from auth.flow_state where user_id = %s and auth_code_issued_at is null"
        " order by created_at desc limit 1) returning auth_code", (user_id,),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


def not_found_user() -> ApiError:
    return not_found("user_not_found", "User not found")


def weak(msg: str) -> ApiError:
    return unprocessable("weak_password", msg)
