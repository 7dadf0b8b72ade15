"""The Mail page (local stack only): the e-mails and SMS the local auth service captured, links clickable."""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.local import list_messages
from appkit.studio.pages import Page
from appkit.studio.render import render
from appkit.studio.target import studio_of

TYPES = ("signup", "invite", "magiclink", "recovery", "email_change", "reauthentication", "sms", "phone_change")
MAX_LIMIT = 1000
_URL = re.compile(r"https?://[^\s<>\"']+")


def segments(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into plain and link pieces (``(piece, is_link)``): only http(s) URLs become links."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _URL.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        out.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def _safe_link(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


async def _messages(request: Request, to: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
    db_url = studio_of(request).target.db_url
    return await anyio.to_thread.run_sync(lambda: list_messages(db_url, to, kind=kind, limit=limit))


async def index(request: Request) -> Response:
    q = request.query_params
    to = (q.get("to") or "").strip() or None
    kind = q.get("type") or None
    if to is not None and len(to) > 320:
        raise HTTPException(400, "to= is longer than an e-mail address can be")
    if kind is not None and kind not in TYPES:
        raise HTTPException(400, f"type={kind[:40]!r}: use one of {', '.join(TYPES)}")
    raw_limit = q.get("limit") or "100"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise HTTPException(400, f"limit must be a number from 1 to {MAX_LIMIT}")
    messages = await _messages(request, to, kind, int(raw_limit))
    for m in messages:
        m["safe_link"] = _safe_link(m.get("link"))
    return render(request, "mail.html", {"messages": messages, "to": to or "", "kind": kind or "", "types": TYPES,
                                         "limit": raw_limit}, active="mail")


async def message(request: Request) -> Response:
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(404, "no such message")
    wanted = int(raw)
    found = next((m for m in await _messages(request, None, None, MAX_LIMIT) if m.get("id") == wanted), None)
    if found is None:
        raise HTTPException(404, f"no captured message {wanted} (among the newest {MAX_LIMIT})")
    found["safe_link"] = _safe_link(found.get("link"))
    return render(request, "mail_message.html", {"m": found, "body": segments(str(found.get("body") or ""))},
                  active="mail")


PAGE = Page(name="mail", title="Mail", path="/mail", order=90, local_only=True, routes=[
    Route("/mail", index), Route("/mail/{id}", message)])
