"""Sessions and tokens: signing access tokens, creating sessions, the refresh-token grant's SQL."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncRawCursor
from psycopg.rows import dict_row

from appkit.local.auth.errors import bad_request, forbidden
from appkit.local.auth.hooks import Hooks, access_token_claims, metadata
from appkit.local.auth.users import INSTANCE_ID, USER_COLS, USER_EXTRAS, USER_JSON_SQL, Conn, Row, is_banned, user_json
from appkit.local.config import AuthConfig
from appkit.local.keys import JWTKeys


def new_refresh_token() -> str:
    return secrets.token_urlsafe(16)


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

    def __init__(self, cfg: AuthConfig, keys: JWTKeys, issuer: str, hooks: Hooks | None = None) -> None:
        self.cfg = cfg
        self.keys = keys
        self.issuer = issuer
        self.hooks = hooks or Hooks(cfg.hook)

    async def access_token(self, conn: Conn, user: Row, session_id: str, aal: str, amr: list[dict[str, Any]],
                           method: str, ip: str | None = None) -> tuple[str, int]:
        """The signed access token and its ``exp``; the custom_access_token hook, when enabled,
        replaces the claims (GoTrue's payload, and GoTrue's checks of what it answers)."""
        now = int(time.time())
        exp = now + self.cfg.jwt_expiry
        claims = {
            "aud": user["aud"] or "authenticated", "exp": exp, "iat": now, "iss": self.issuer,
            "sub": str(user["id"]), "email": user["email"] or "", "phone": user["phone"] or "",
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
            "role": user["role"] or "authenticated", "aal": aal, "amr": amr, "session_id": session_id,
            "is_anonymous": bool(user["is_anonymous"]),
        }
        if self.hooks.enabled("custom_access_token"):
            answer = await self.hooks.invoke("custom_access_token", {
                "metadata": metadata("custom_access_token", ip), "user_id": str(user["id"]), "claims": claims,
                "authentication_method": method,
            }, conn)
            claims = access_token_claims(answer)
            return self.keys.sign(claims), exp
        return sign(self.keys, claims), exp

    async def session_json(self, conn: Conn, user: Row, session_id: str, aal: str, amr: list[dict[str, Any]],
                           refresh_token: str, method: str, ip: str | None = None) -> dict[str, Any]:
        token, exp = await self.access_token(conn, user, session_id, aal, amr, method, ip)
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
        return await self.session_json(conn, fresh, session_id, "aal1", amr, refresh, method, ip)

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
        if self.hooks.enabled("custom_access_token"):
            return [None] * len(tokens)  # the hook runs per token, in :meth:`refresh`
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
        for ordinal, claims_json, user_doc in rows:
            base = json.loads(claims_json)
            claims = {"aud": base["aud"], "exp": exp, "iat": now, "iss": self.issuer, "sub": base["sub"],
                      "email": base["email"], "phone": base["phone"], "app_metadata": base["app_metadata"],
                      "user_metadata": base["user_metadata"], "role": base["role"], "aal": base["aal"],
                      "amr": base["amr"], "session_id": base["session_id"], "is_anonymous": base["is_anonymous"]}
            new = news[ordinal - 1]
            head = json.dumps({"access_token": sign(self.keys, claims), "token_type": "bearer",
                               "expires_in": self.cfg.jwt_expiry, "expires_at": exp, "refresh_token": new},
                              separators=(",", ":"))
            done[ordinal - 1] = head[:-1] + ',"user":' + str(user_doc) + "}"
        return [None if slot is None else done.get(slot) for slot in slots]

    async def refresh(self, conn: Conn, token: str) -> dict[str, Any] | None:
        """The ``refresh_token`` grant, with GoTrue's rotation and reuse-interval rules.

        Runs inside the caller's transaction; raises :class:`GoTrueError`. When a revoked token
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
                return await self.session_json(conn, row, session_id, row["s_aal"] or "aal1", list(row["s_amr"]),
                                               active[0], "token_refresh")
        new = new_refresh_token()
        await conn.execute(
            "with r as (update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s),"
            " n as (insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at,"
            " parent, session_id) values (%s, %s, %s, false, now(), now(), %s, %s))"
            " update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now() where id = %s",
            (row["rt_id"], INSTANCE_ID, new, str(row["id"]), row["rt_token"], session_id, session_id),
        )
        return await self.session_json(conn, row, session_id, row["s_aal"] or "aal1", list(row["s_amr"]), new,
                                       "token_refresh")

    async def reissue(self, conn: Conn, user: Row, session_id: str, method: str = "mfa/totp") -> dict[str, Any]:
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
        return await self.session_json(conn, user, session_id, aal, amr, new, method)


REUSE_ERROR = ("refresh_token_already_used", "Invalid Refresh Token: Already Used")
