"""The Notifications page: send a notification to a user or to an organization's members, and the latest
notifications sent (``app.admin.notifications``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit import AsyncAppKit, errors
from appkit.orgs import Role
from appkit.studio.pages import Page
from appkit.studio.pages import _forms as f
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

RECENT = 50


async def _user_id(admin: AsyncAppKit, ref: str) -> str:
    """A user id from an id or an exact e-mail address."""
    try:
        return str(UUID(ref))
    except ValueError:
        pass
    if "@" not in ref:
        raise HTTPException(400, f"{ref[:100]!r} is neither a user id nor an e-mail address")
    page = await admin.users.list(filter=ref, per_page=50)
    for user in page.users:
        if (user.email or "").lower() == ref.lower():
            return str(user.id)
    raise errors.NotFound(f"no user with e-mail {ref}", code="user_not_found")


async def index(request: Request) -> Response:
    admin = studio_of(request).admin
    user = f.text(request.query_params, "user", max_len=320)
    user_id = await _user_id(admin, user) if user else None
    recent = await admin.notifications.list(user_id=user_id, limit=RECENT)
    return render(request, "notifications.html", {"recent": recent, "user": user,
                                                  "roles": [r.value for r in Role]}, active="notifications")


def _message(form: FormData) -> dict[str, Any]:
    return {"title": f.text(form, "title", required=True, max_len=200),
            "body": f.text(form, "body", max_len=10_000) or None,
            "kind": f.text(form, "kind", max_len=64) or "info",
            "email": f.checkbox(form, "email")}


@csrf_protect
async def send(request: Request) -> Response:
    form = await request.form()
    admin = studio_of(request).admin
    target = f.text(form, "to", required=True, max_len=10)
    if target == "user":
        user_id = await _user_id(admin, f.text(form, "user", required=True, max_len=320))
        await admin.notifications.send(user_id, **_message(form))
        return redirect("/notifications", "Notification sent to 1 user.")
    if target == "org":
        org = await admin.orgs.get(f.text(form, "org", required=True, max_len=100))
        count = await admin.notifications.send_to_org(org.id, min_role=f.text(form, "min_role") or "viewer",
                                                      **_message(form))
        return redirect("/notifications", f"Notification sent to {count} member(s) of {org.name}.")
    raise HTTPException(400, "send to 'user' or 'org'")


PAGE = Page(name="notifications", title="Notifications", path="/notifications", order=75, routes=[
    Route("/notifications", index),
    Route("/notifications", send, methods=["POST"]),
])
