"""The Organizations page: list and create organizations; an organization's members and roles, invitations
(create, revoke), ownership transfer and deletion. Everything goes through ``app.admin.orgs``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.orgs import Role
from appkit.studio.pages import Page
from appkit.studio.pages import _forms as f
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

ROLES = [r.value for r in Role]
LIST_LIMIT = 1000


def _org_id(request: Request) -> str:
    return f.uuid(str(request.path_params["org"]), "organization")


async def index(request: Request) -> Response:
    q = f.text(request.query_params, "q", max_len=200).lower()
    orgs = await studio_of(request).admin.orgs.list(limit=LIST_LIMIT)
    if q:
        orgs = [o for o in orgs if q in o.name.lower() or q in o.slug]
    return render(request, "orgs.html", {"orgs": orgs, "q": q, "roles": ROLES, "limit": LIST_LIMIT},
                  active="orgs")


@csrf_protect
async def create(request: Request) -> Response:
    form = await request.form()
    owner = f.text(form, "owner", required=True, max_len=320)
    org = await studio_of(request).admin.orgs.create(
        f.text(form, "name", required=True, max_len=200), f.text(form, "slug", required=True, max_len=63),
        owner=owner)
    return redirect(f"/orgs/{org.id}", f"Organization {org.name} created.")


async def _detail(request: Request, org_id: str, *, created: object = None, status: int = 200) -> Response:
    admin = studio_of(request).admin
    org = await admin.orgs.get(org_id)
    members = await admin.orgs.members(org.id)
    invitations = await admin.orgs.invitations(org.id)
    return render(request, "orgs_org.html", {"org": org, "members": members, "invitations": invitations,
                                             "roles": ROLES, "created": created}, status=status, active="orgs")


async def show(request: Request) -> Response:
    return await _detail(request, _org_id(request))


@csrf_protect
async def add_member(request: Request) -> Response:
    org_id = _org_id(request)
    form = await request.form()
    user = f.text(form, "user", required=True, max_len=320)
    member = await studio_of(request).admin.orgs.add(org_id, user, f.text(form, "role") or "member")
    return redirect(f"/orgs/{org_id}", f"{member.email or member.user_id} added as {member.role.value}.")


@csrf_protect
async def set_role(request: Request) -> Response:
    org_id = _org_id(request)
    user_id = f.uuid(str(request.path_params["user"]), "member")
    form = await request.form()
    member = await studio_of(request).admin.orgs.set_role(org_id, user_id, f.text(form, "role", required=True))
    return redirect(f"/orgs/{org_id}", f"{member.email or member.user_id} is now {member.role.value}.")


@csrf_protect
async def remove_member(request: Request) -> Response:
    org_id = _org_id(request)
    user_id = f.uuid(str(request.path_params["user"]), "member")
    await studio_of(request).admin.orgs.remove(org_id, user_id)
    return redirect(f"/orgs/{org_id}", "Member removed.")


@csrf_protect
async def transfer(request: Request) -> Response:
    org_id = _org_id(request)
    form = await request.form()
    user_id = f.optional_uuid(form, "user")
    if user_id is None:
        return render(request, "error.html", {"status": 400, "title": "Bad request",
                                              "message": "choose the member who becomes the owner"}, status=400)
    await studio_of(request).admin.orgs.transfer(org_id, user_id)
    return redirect(f"/orgs/{org_id}", "Ownership transferred.")


@csrf_protect
async def invite(request: Request) -> Response:
    """Create an invitation and show its token once (the database keeps only its hash)."""
    org_id = _org_id(request)
    form = await request.form()
    days = f.integer(form, "expires_days", default=7, lo=1, hi=365)
    assert days is not None
    invitation = await studio_of(request).admin.orgs.invite(
        org_id, role=f.text(form, "role") or "member", email=f.text(form, "email", max_len=320) or None,
        expires_in=days * 86400, send_email=f.checkbox(form, "send_email"))
    return await _detail(request, org_id, created=invitation, status=201)


@csrf_protect
async def revoke(request: Request) -> Response:
    org_id = _org_id(request)
    invitation_id = f.uuid(str(request.path_params["invitation"]), "invitation")
    await studio_of(request).admin.orgs.revoke_invitation(invitation_id)
    return redirect(f"/orgs/{org_id}", "Invitation revoked.")


@csrf_protect
async def delete(request: Request) -> Response:
    org_id = _org_id(request)
    admin = studio_of(request).admin
    org = await admin.orgs.get(org_id)
    await admin.orgs.delete(org.id)
    return redirect("/orgs", f"Organization {org.name} deleted.")


PAGE = Page(name="orgs", title="Organizations", path="/orgs", order=40, routes=[
    Route("/orgs", index),
    Route("/orgs", create, methods=["POST"]),
    Route("/orgs/{org}", show),
    Route("/orgs/{org}/delete", delete, methods=["POST"]),
    Route("/orgs/{org}/members", add_member, methods=["POST"]),
    Route("/orgs/{org}/members/{user}/role", set_role, methods=["POST"]),
    Route("/orgs/{org}/members/{user}/remove", remove_member, methods=["POST"]),
    Route("/orgs/{org}/transfer", transfer, methods=["POST"]),
    Route("/orgs/{org}/invitations", invite, methods=["POST"]),
    Route("/orgs/{org}/invitations/{invitation}/revoke", revoke, methods=["POST"]),
])
