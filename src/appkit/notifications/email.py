"""E-mail delivery of notifications: a jobs handler that sends through ``[auth.email.smtp]``.

Notifications sent with ``email=True`` are queued on ``EMAIL_QUEUE``; register the handler
on a worker and run it::

    from appkit.jobs import Worker
    from appkit.notifications.email import SmtpSettings, register_email_handler

    worker = Worker()                                   # SUPABASE_DB_URL
    register_email_handler(worker, smtp=SmtpSettings.from_config("supabase/config.toml"))
    worker.run()

With no SMTP settings (or ``enabled = false``) the message is kept in the local stack's mail
catcher instead (``appkit mail`` lists it); on a database without the catcher that is an error.
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import ssl
import tomllib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pydantic
from psycopg.rows import dict_row

from appkit import errors
from appkit.db.queries import load_queries

EMAIL_QUEUE = "appkit.notification_email"
_ENV = re.compile(r"^env\((\w+)\)$")
_Q = load_queries("appkit.notifications")


@dataclass(frozen=True)
class SmtpSettings:
    """The Supabase CLI's ``[auth.email.smtp]`` section (``pass`` may be ``env(NAME)``)."""

    host: str
    port: int = 587
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    admin_email: str = "admin@example.com"
    sender_name: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_config(cls, path: str | Path) -> SmtpSettings | None:
        """The settings of a project's ``config.toml``, or None when SMTP is absent or disabled."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise errors.ConfigError(f"{path}: cannot read the SMTP settings: {exc}") from None
        smtp = data.get("auth", {}).get("email", {}).get("smtp")
        if not isinstance(smtp, dict) or not smtp.get("enabled", True) or not smtp.get("host"):
            return None

        def value(key: str) -> Any:
            raw = smtp.get(key)
            if isinstance(raw, str) and (m := _ENV.match(raw.strip())):
                return os.environ.get(m.group(1)) or None
            return raw

        try:
            port = int(value("port") or 587)
        except (TypeError, ValueError):
            raise errors.ConfigError(f"{path}: [auth.email.smtp] port must be a number") from None
        if not 1 <= port <= 65535:
            raise errors.ConfigError(f"{path}: [auth.email.smtp] port must be 1-65535")
        return cls(host=str(value("host")), port=port, user=value("user"), password=value("pass"),
                   admin_email=str(value("admin_email") or "admin@example.com"), sender_name=value("sender_name"))


class EmailJob(pydantic.BaseModel):
    """The payload ``appkit.send_notification(..., email => true)`` queues."""

    notification_id: UUID


def render(row: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of a notification e-mail."""
    lines = [row["title"]]
    if row.get("body"):
        lines += ["", row["body"]]
    url = (row.get("data") or {}).get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        lines += ["", url]
    return row["title"], "\n".join(lines) + "\n"


def _send_smtp(smtp: SmtpSettings, to: str, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = formataddr((smtp.sender_name or "", smtp.admin_email))
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.port == 465:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.port != 465 and client.has_extn("starttls"):
            client.starttls(context=context)
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        client.send_message(msg)


async def deliver(db_url: str, notification_id: UUID, smtp: SmtpSettings | None) -> str:
    """Send one notification's e-mail; returns ``sent``, ``captured`` or ``no-email`` (a
    phone-only user, or a notification deleted before its turn)."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row,
                                                     connect_timeout=10) as conn:
        row = await (await conn.execute(_Q["email_of_notification"], {"id": notification_id})).fetchone()
        if row is None or not row["email"]:
            return "no-email"
        subject, body = render(row)
        if smtp is not None:
            try:
                await asyncio.to_thread(_send_smtp, smtp, row["email"], subject, body)
            except (OSError, smtplib.SMTPException) as exc:
                raise errors.ServiceUnavailable(f"SMTP delivery to {smtp.host}:{smtp.port} failed: {exc}",
                                                code="smtp_error") from None
            return "sent"
        present = await (await conn.execute(_Q["catcher_exists"])).fetchone()
        if not present or not present["present"]:
            raise errors.ConfigError("no SMTP settings ([auth.email.smtp]) and no local mail catcher in this "
                                     "database: configure SMTP to deliver notification e-mails")
        await conn.execute(_Q["capture_email"], {"recipient": row["email"], "subject": subject, "body": body,
                                                  "id": notification_id})
        return "captured"


def register_email_handler(worker: Any, *, smtp: SmtpSettings | None = None, db_url: str | None = None,
                           max_attempts: int = 5) -> None:
    """Register the ``EMAIL_QUEUE`` handler on an ``appkit.jobs.Worker`` (it reads notifications
    from ``db_url``, default the worker's own URL or ``SUPABASE_DB_URL``)."""

    async def send_notification_email(payload: EmailJob) -> None:
        url = db_url or worker.db_url or os.environ.get("SUPABASE_DB_URL")
        if not url:
            raise errors.ConfigError("the e-mail handler needs a database URL")
        await deliver(url, payload.notification_id, smtp)

    worker.job(EMAIL_QUEUE, max_attempts=max_attempts, backoff=5.0)(send_notification_email)
