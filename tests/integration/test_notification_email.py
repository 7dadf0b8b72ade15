"""E-mail delivery of notifications: the jobs handler (appkit.notifications.email), SMTP and the mail catcher."""

from __future__ import annotations

import asyncio
import email
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appkit import AppKit, errors
from appkit.jobs import Worker
from appkit.notifications.email import EMAIL_QUEUE, SmtpSettings, deliver, register_email_handler
from tests.jobs_support import running, wait_until
from tests.orgs_support import build_org, make_user
from tests.sdk_support import make_app
from tests.support import StackHandle, free_port, run_cli
from tests.svc_support import sql


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = make_app(stack)
    yield client
    client.close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321, no TLS, no AUTH) to receive one message per session."""

    def handle(self) -> None:
        server: Any = self.server

        def say(line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        say("220 test smtp ready")
        rcpt: list[str] = []
        while line := self.rfile.readline():
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 test")
            elif verb == "MAIL":
                say("250 ok")
            elif verb == "RCPT":
                rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                server.received.append((rcpt, email.message_from_bytes(data)))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


@pytest.fixture()
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    port = free_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _SmtpHandler)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def captured(stack: StackHandle, recipient: str) -> list[tuple[Any, ...]]:
    return sql(stack, "select subject, body from _appkit.auth_messages where type = 'notification' "
                      "and lower(recipient) = lower(%s) order by id", (recipient,))


async def test_worker_captures_emails_without_smtp(stack: StackHandle) -> None:
    u = make_user(stack)
    worker = Worker(stack.db_url, poll_interval=0.1, schedules=False)
    register_email_handler(worker)
    async with running(worker, [EMAIL_QUEUE]):
        from tests.sdk_support import make_async_app

        async with make_async_app(stack) as app:
            n = await app.admin.notifications.send(u.id, title="Your report", body="It is ready.",
                                                   data={"url": "https://example.com/r/1"}, email=True)
        await wait_until(lambda: bool(captured(stack, u.email)), what="the captured e-mail")

        def job_status() -> list[tuple[Any, ...]]:
            return sql(stack, "select status from appkit.jobs where queue = %s "
                              "and payload->>'notification_id' = %s", (EMAIL_QUEUE, str(n.id)))

        await wait_until(lambda: job_status() == [("succeeded",)], what="the job to succeed")
    [(subject, body)] = captured(stack, u.email)
    assert subject == "Your report"
    assert body == "Your report\n\nIt is ready.\n\nhttps://example.com/r/1\n"
    listed = run_cli("mail", "--to", u.email, "--type", "notification", "--json", "--db-url", stack.db_url)
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["subject"] == "Your report"


async def test_smtp_delivery(stack: StackHandle, smtp_server: tuple[int, list[Any]]) -> None:
    port, received = smtp_server
    u = make_user(stack)
    make = make_app(stack)
    try:
        n = make.admin.notifications.send(u.id, title="Over SMTP", body="Hello")
    finally:
        make.close()
    smtp = SmtpSettings(host="127.0.0.1", port=port, admin_email="noreply@example.com", sender_name="Acme")
    assert await deliver(stack.db_url, n.id, smtp) == "sent"
    [(rcpt, msg)] = received
    assert rcpt == [u.email]
    assert msg["Subject"] == "Over SMTP" and msg["To"] == u.email
    assert msg["From"] == "Acme <noreply@example.com>"
    assert "Hello" in msg.get_payload()
    assert captured(stack, u.email) == []


async def test_smtp_failure_is_a_typed_error(stack: StackHandle) -> None:
    u = make_user(stack)
    make = make_app(stack)
    try:
        n = make.admin.notifications.send(u.id, title="x")
    finally:
        make.close()
    with pytest.raises(errors.ServiceUnavailable):
        await deliver(stack.db_url, n.id, SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2))


def test_org_email_queues_one_job_per_member(stack: StackHandle, app: AppKit) -> None:
    users = {role: make_user(stack) for role in ("owner", "admin", "member")}
    org = build_org(stack.db_url, {role: u.id for role, u in users.items()})
    sent = app.as_user(users["admin"].token).notifications.send_to_org(org.id, title="Hi all", email=True)
    assert sent == 2
    jobs = sql(stack, "select count(*) from appkit.jobs j join appkit.notifications n "
                      "on n.id = (j.payload->>'notification_id')::uuid where j.queue = %s and n.org_id = %s",
               (EMAIL_QUEUE, org.id))
    assert jobs == [(2,)]
    assert app.admin.notifications.send_to_org(org.id, title="no mail") == 3
    assert sql(stack, "select count(*) from appkit.jobs j join appkit.notifications n "
                      "on n.id = (j.payload->>'notification_id')::uuid where j.queue = %s and n.org_id = %s",
               (EMAIL_QUEUE, org.id)) == [(2,)]


@pytest.mark.parametrize("kwargs", [{"email": "yes"}, {"email": 1}, {"email": None}])
def test_email_flag_bad_input(app: AppKit, kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.notifications.send("00000000-0000-0000-0000-000000000000", title="t", **kwargs)
    with pytest.raises(errors.ValidationError):
        app.admin.notifications.send_to_org("00000000-0000-0000-0000-000000000000", title="t", **kwargs)


def test_smtp_settings_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[auth.email.smtp]\nenabled = true\nhost = "smtp.example.com"\nport = 465\nuser = "u"\n'
                   'pass = "env(TEST_SMTP_PASS)"\nadmin_email = "a@example.com"\nsender_name = "Acme"\n')
    monkeypatch.setenv("TEST_SMTP_PASS", "s3cret")
    s = SmtpSettings.from_config(cfg)
    assert s == SmtpSettings(host="smtp.example.com", port=465, user="u", password="s3cret",
                             admin_email="a@example.com", sender_name="Acme")
    assert "s3cret" not in repr(s)
    cfg.write_text('[auth.email.smtp]\nenabled = false\nhost = "smtp.example.com"\n')
    assert SmtpSettings.from_config(cfg) is None
    cfg.write_text("[auth]\nsite_url = 'x'\n")
    assert SmtpSettings.from_config(cfg) is None
    for bad in ('[auth.email.smtp]\nhost = "h"\nport = "abc"\n', '[auth.email.smtp]\nhost = "h"\nport = 70000\n',
                "not toml ["):
        cfg.write_text(bad)
        with pytest.raises(errors.ConfigError):
            SmtpSettings.from_config(cfg)
    with pytest.raises(errors.ConfigError):
        SmtpSettings.from_config(tmp_path / "missing.toml")


def test_email_job_for_a_deleted_notification_is_skipped(stack: StackHandle) -> None:
    import uuid

    assert asyncio.run(deliver(stack.db_url, uuid.uuid4(), None)) == "no-email"
