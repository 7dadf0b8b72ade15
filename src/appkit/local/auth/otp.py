"""One-time codes and PKCE: storing and consuming OTPs, verify links, flow state and auth codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from appkit.local.auth.errors import bad_request, forbidden
from appkit.local.auth.inputs import get_str
from appkit.local.auth.users import Conn


def token_hash(recipient: str, otp: str) -> str:
    return hashlib.sha224((recipient + otp).encode("utf-8")).hexdigest()


def new_otp(length: int = 6) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


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
