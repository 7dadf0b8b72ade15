"""The Users page: search, create, invite, ban/unban, reset password, set claims, sign out, delete; a user's
identities, sessions, factors and organization memberships."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.db.queries import load_queries
from appkit.studio.pages import Page
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

PER_PAGE = 50
MAX_PAGE = 100_000
BAN_DURATIONS = {"1h": "1 hour", "24h": "1 day", "168h": "1 week", "forever": "forever"}


def _user_id(request: Request) -> str:
    raw = request.path_params["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise HTTPException(404, f"no user {raw[:60]!r}: a user id is a UUID") from None


def _field(form: FormData, name: str, *, required: bool = True, limit: int = 10_000) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise HTTPException(400, f"{name} is required")
    if len(text) > limit:
        raise HTTPException(400, f"{name} is too long")
    return text


def _status(user: Any) -> str:
    if getattr(user, "banned_until", None):
        return "banned"
    if not (user.email_confirmed_at or user.phone_confirmed_at):
        return "invited" if user.invited_at else "unconfirmed"
    return "active"


async def index(request: Request) -> Response:
    q = request.query_params
    search = (q.get("q") or "").strip()
    if len(search) > 200:
        raise HTTPException(400, "the search text is too long")
    raw_page = q.get("page") or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE:
        raise HTTPException(400, f"page must be a number from 1 to {MAX_PAGE}")
    page_no = int(raw_page)
    result = await studio_of(request).admin.users.list(page=page_no, per_page=PER_PAGE, filter=search or None)
    users = [{"user": u, "status": _status(u)} for u in result.users]
    pages = max(1, -(-result.total // PER_PAGE))
    return render(request, "users.html", {"users": users, "q": search, "page": page_no, "pages": pages,
                                          "total": result.total}, active="users")


async def show(request: Request) -> Response:
    uid = _user_id(request)
    studio = studio_of(request)
    user = await studio.admin.users.get(uid)
    factors = await studio.admin.users.factors(uid)
    queries = load_queries("appkit.studio", "queries.sql")
    async with studio.db() as conn:
        cur = await conn.execute(queries["user_sessions"], {"id": uid})
        sessions = await cur.fetchall()
        memberships: list[dict[str, Any]] | None = None
        cur = await conn.execute(queries["has_memberships"])
        present = await cur.fetchone()
        if present and present["present"]:
            cur = await conn.execute(queries["user_memberships"], {"id": uid})
            memberships = list(await cur.fetchall())
    return render(request, "user.html", {
        "u": user, "status": _status(user), "factors": factors, "sessions": sessions, "memberships": memberships,
        "identities": user.identities or [], "bans": BAN_DURATIONS,
        "app_metadata": json.dumps(user.app_metadata or {}, indent=2, sort_keys=True),
        "user_metadata": json.dumps(user.user_metadata or {}, indent=2, sort_keys=True),
    }, active="users")


@csrf_protect
async def create(request: Request) -> Response:
    form = await request.form()
    email = _field(form, "email", limit=320)
    password = _field(form, "password", required=False, limit=1000) or None
    user = await studio_of(request).admin.users.create(email=email, password=password,
                                                       email_confirm=form.get("confirm") == "1")
    return redirect(f"/users/{user.id}", f"Created {email}.")


@csrf_protect
async def invite(request: Request) -> Response:
    form = await request.form()
    email = _field(form, "email", limit=320)
    user = await studio_of(request).admin.users.invite(email)
    return redirect(f"/users/{user.id}", f"Invited {email}: the invitation e-mail is on its way.")


@csrf_protect
async def ban(request: Request) -> Response:
    uid = _user_id(request)
    form = await request.form()
    duration = _field(form, "duration")
    if duration not in BAN_DURATIONS:
        raise HTTPException(400, f"duration must be one of {', '.join(BAN_DURATIONS)}")
    admin = studio_of(request).admin.users
    if duration == "forever":
        await admin.ban(uid)
    else:
        await admin.ban(uid, duration)
    return redirect(f"/users/{uid}", f"Banned for {BAN_DURATIONS[duration]}.")


@csrf_protect
async def unban(request: Request) -> Response:
    uid = _user_id(request)
    await studio_of(request).admin.users.unban(uid)
    return redirect(f"/users/{uid}", "Unbanned.")


@csrf_protect
async def password(request: Request) -> Response:
    uid = _user_id(request)
    form = await request.form()
    studio = studio_of(request)
    if form.get("action") == "email":
        user = await studio.admin.users.get(uid)
        if not user.email:
            raise HTTPException(400, "the user has no e-mail address to send a recovery link to")
        await studio.app.auth.reset_password(user.email)
        return redirect(f"/users/{uid}", f"Sent a password recovery e-mail to {user.email}.")
    await studio.admin.users.set_password(uid, _field(form, "password", limit=1000))
    return redirect(f"/users/{uid}", "Password set.")


@csrf_protect
async def claims(request: Request) -> Response:
    uid = _user_id(request)
    form = await request.form()
    text = _field(form, "app_metadata", limit=100_000)
    try:
        data = json.loads(text)
    except ValueError:
        raise HTTPException(400, "app_metadata must be valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "app_metadata must be a JSON object")
    await studio_of(request).admin.users.set_app_metadata(uid, data)
    return redirect(f"/users/{uid}", "Claims saved: they appear in the user's next access token.")


@csrf_protect
async def sign_out(request: Request) -> Response:
    uid = _user_id(request)
    await studio_of(request).admin.users.sign_out(uid)
    return redirect(f"/users/{uid}", "Signed out everywhere: refresh tokens no longer work.")


@csrf_protect
async def delete(request: Request) -> Response:
    uid = _user_id(request)
    await studio_of(request).admin.users.delete(uid)
    return redirect("/users", "User deleted.")


@csrf_protect
async def delete_factor(request: Request) -> Response:
    uid = _user_id(request)
    try:
        fid = str(uuid.UUID(request.path_params["factor"]))
    except ValueError:
        raise HTTPException(404, "no such factor") from None
    await studio_of(request).admin.users.delete_factor(uid, fid)
    return redirect(f"/users/{uid}", "Factor removed.")


PAGE = Page(name="users", title="Users", path="/users", order=20, routes=[
    Route("/users", index),
    Route("/users/new", create, methods=["POST"]),
    Route("/users/invite", invite, methods=["POST"]),
    Route("/users/{id}", show),
    Route("/users/{id}/ban", ban, methods=["POST"]),
    Route("/users/{id}/unban", unban, methods=["POST"]),
    Route("/users/{id}/password", password, methods=["POST"]),
    Route("/users/{id}/claims", claims, methods=["POST"]),
    Route("/users/{id}/sign-out", sign_out, methods=["POST"]),
    Route("/users/{id}/delete", delete, methods=["POST"]),
    Route("/users/{id}/factors/{factor}/delete", delete_factor, methods=["POST"]),
])
