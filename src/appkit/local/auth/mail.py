"""Outgoing e-mail and SMS of the local auth service, captured in ``_appkit.auth_messages``.

Nothing is delivered: tests, the CLI (``list_messages``) and the JSON endpoint
``GET /auth/v1/_appkit/messages`` read the messages with their links and codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from appkit.db.connect import connect

SUBJECTS = {
    "signup": "Confirm Your Signup",
    "invite": "You have been invited",
    "magiclink": "Your Magic Link",
    "recovery": "Reset Your Password",
    "email_change": "Confirm Email Change",
    "email_change_current": "Confirm Email Change",
    "email_change_new": "Confirm Email Change",
    "reauthentication": "Confirm reauthentication",
}

_COLUMNS = "id, created_at, channel, recipient, type, subject, body, link, otp, token_hash, redirect_to, user_id"


def render_email(kind: str, link: str | None, otp: str) -> tuple[str, str]:
    subject = SUBJECTS.get(kind, "Supabase Auth")
    lines = [f"<h2>{subject}</h2>"]
    if link:
        lines.append(f'<p>Follow this link:</p><p><a href="{link}">{link}</a></p>')
    lines.append(f"<p>Alternatively, enter the code: {otp}</p>")
    return subject, "\n".join(lines)


def render_sms(template: str, otp: str) -> str:
    return template.replace("{{ .Code }}", otp).replace("{{.Code}}", otp)


async def capture(conn: psycopg.AsyncConnection[Any], *, channel: str, recipient: str, kind: str,
                  otp: str, link: str | None = None, token_hash: str | None = None,
                  redirect_to: str | None = None, user_id: str | None = None,
                  sms_template: str = "Your code is {{ .Code }}") -> int:
    if channel == "email":
        subject: str | None
        subject, body = render_email(kind, link, otp)
    else:
        subject, body = None, render_sms(sms_template, otp)
    cur = await conn.execute(
        "insert into _appkit.auth_messages (channel, recipient, type, subject, body, link, otp, token_hash,"
        " redirect_to, user_id) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning id",
        (channel, recipient, kind, subject, body, link, otp, token_hash, redirect_to, user_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    created = out["created_at"]
    if isinstance(created, datetime):
        out["created_at"] = created.isoformat()
    if out.get("user_id") is not None:
        out["user_id"] = str(out["user_id"])
    return out


def _query(recipient: str | None, kind: str | None, limit: int) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if recipient:
        where.append("lower(recipient) = lower(%s)")
        params.append(recipient.lstrip("+") if recipient.lstrip("+").isdigit() else recipient)
    if kind:
        where.append("type = %s")
        params.append(kind)
    sql = f"select {_COLUMNS} from _appkit.auth_messages"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by id desc limit %s"
    params.append(limit)
    return sql, params


async def list_messages_async(conn: psycopg.AsyncConnection[Any], recipient: str | None = None,
                              kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    sql, params = _query(recipient, kind, limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return [_jsonable(r) for r in await cur.fetchall()]


def list_messages(db_url: str, email: str | None = None, *, kind: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """The captured messages, newest first; ``email`` (or a phone number) filters by recipient.

    ``db_url`` is the stack's database URL (``appkit status`` shows it). Each message is a
    dict with ``id``, ``created_at``, ``channel`` (email/sms), ``recipient``, ``type``
    (signup, magiclink, recovery, invite, email_change, reauthentication, sms, phone_change),
    ``subject``, ``body``, ``link``, ``otp``, ``token_hash``, ``redirect_to``, ``user_id``.
    """
    sql, params = _query(email, kind, limit)
    with connect(db_url, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        if conn.execute("select to_regclass('_appkit.auth_messages')").fetchone() == (None,):
            return []
        cur.execute(sql, params)
        return [_jsonable(r) for r in cur.fetchall()]
