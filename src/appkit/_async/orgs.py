"""Organizations and role checks (``app.orgs``, ``app.rbac``): thin typed callers of appkit's SQL.

Every call goes through PostgREST (schema ``appkit``) as the facade's caller, so the
database's RLS and RPCs decide; this module validates input, shapes results and turns
"nothing came back" into the typed error the caller should see.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

import jwt as pyjwt
from pydantic import ValidationError as PydanticValidationError

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit._uuid import parse_uuid
from appkit.orgs.models import (
    EMAIL_RE,
    PERMISSION_RE,
    SLUG_RE,
    TOKEN_RE,
    Invitation,
    InvitationPreview,
    Membership,
    Organization,
    Role,
    as_role,
)

SCHEMA = "appkit"
OrgRef = Organization | UUID | str
UserRef = UUID | str
_INVITATION_COLUMNS = "id,org_id,email,role,invited_by,created_at,expires_at,accepted_at,accepted_by,revoked_at"
_MAX_NAME = 200


def _uuid(value: Any, what: str) -> UUID | None:
    if isinstance(value, UUID | str):
        return parse_uuid(value)
    raise errors.ValidationError(f"{what} must be a UUID or a string, not {type(value).__name__}",
                                 code="invalid_reference")


def _user_id(user: UserRef) -> str:
    uid = _uuid(user, "user")
    if uid is None:
        raise errors.ValidationError(f"invalid user id {user!r}: expected a UUID", code="invalid_user")
    return str(uid)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= _MAX_NAME:
        raise errors.ValidationError("an organization name has 1 to 200 characters", code="invalid_name")
    return name


def _check_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise errors.ValidationError(
            f"invalid slug {slug!r}: use 1 to 63 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen", code="invalid_slug")
    return slug


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise errors.ValidationError("metadata must be a mapping (a JSON object)", code="invalid_metadata")
    return dict(metadata)


def _check_token(token: Any) -> str:
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise errors.ValidationError("malformed invitation token (expected 64 hex characters)", code="invalid_token")
    return token


def _parse(model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise errors.UnexpectedResponse(f"the server's answer could not be parsed as {model.__name__}: {exc}",
                                        code="unexpected_response") from None


class AsyncOrgs:
    """Organizations, members and invitations, as the facade's caller (RLS decides)."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope

    async def _rest(self) -> Any:
        return await self._scope.rest(SCHEMA)

    async def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        return await self._scope.rpc(SCHEMA, function, params)

    async def _select(self, table: str, columns: str, **eq: str) -> builtins.list[dict[str, Any]]:
        client = await self._rest()
        builder = client.from_(table).select(columns)
        for key, value in eq.items():
            builder = builder.eq(key, value)
        with boundary():
            response = await builder.execute()
        return list(response.data or [])

    async def _org_id(self, org: OrgRef) -> str:
        """The id of ``org`` (an Organization, its id, or its slug, looked up under RLS)."""
        if isinstance(org, Organization):
            return str(org.id)
        uid = _uuid(org, "org")
        if uid is not None:
            return str(uid)
        assert isinstance(org, str)
        rows = await self._select("organizations", "id", slug=_check_slug(org))
        if not rows:
            raise errors.NotFound(f"organization {org!r} not found (missing or not visible to this caller)",
                                  code="org_not_found", status=404)
        return str(rows[0]["id"])

    async def _caller_id(self) -> str:
        if self._scope.role != "user":
            raise errors.AuthError("this needs a signed-in user's client (app.as_user(session))", code="no_user")
        token = await self._scope.token()
        try:
            sub = pyjwt.decode(token, options={"verify_signature": False}).get("sub")
        except pyjwt.PyJWTError:
            sub = None
        if not isinstance(sub, str) or _uuid(sub, "sub") is None:
            raise errors.AuthError("the access token names no user (sub)", code="bad_jwt")
        return sub

    # organizations --------------------------------------------------------------------
    async def create(self, name: str, slug: str, *, metadata: Mapping[str, Any] | None = None,
                     owner: UserRef | None = None) -> Organization:
        """Create an organization; the caller becomes its owner (the service role names ``owner``:
        a user id, or an e-mail address)."""
        params: dict[str, Any] = {"name": _check_name(name), "slug": _check_slug(slug),
                                  "metadata": _check_metadata(metadata if metadata is not None else {})}
        if isinstance(owner, str) and "@" in owner and self._scope.role == "service_role":
            params["owner_id"] = await self._find_user(owner)
        elif owner is not None:
            params["owner_id"] = _user_id(owner)
        elif self._scope.role == "service_role":
            raise errors.ValidationError("the service role must name the organization's owner", code="owner_required")
        org: Organization = _parse(Organization, await self._rpc("create_organization", params))
        return org.model_copy(update={"role": Role.owner})

    async def mine(self) -> builtins.list[Organization]:
        """The caller's organizations, each with the caller's ``role``, by name."""
        uid = await self._caller_id()
        roles = {str(r["org_id"]): r["role"] for r in await self._select("memberships", "org_id,role", user_id=uid)}
        if not roles:
            return []
        client = await self._rest()
        with boundary():
            response = await client.from_("organizations").select("*").in_("id", list(roles)).order("name").execute()
        return [_parse(Organization, {**row, "role": roles.get(str(row["id"]))}) for row in response.data or []]

    async def list(self, *, limit: int = 1000) -> builtins.list[Organization]:
        """Organizations visible to the caller by name (every one for the service role)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise errors.ValidationError("limit must be between 1 and 10000", code="invalid_limit")
        client = await self._rest()
        with boundary():
            response = await client.from_("organizations").select("*").order("name").limit(limit).execute()
        return [_parse(Organization, row) for row in response.data or []]

    async def get(self, org: OrgRef) -> Organization:
        """One organization by id or slug; ``errors.NotFound`` if missing or not visible."""
        org_id = await self._org_id(org)
        rows = await self._select("organizations", "*", id=org_id)
        if not rows:
            raise errors.NotFound(f"organization {org!s} not found (missing or not visible to this caller)",
                                  code="org_not_found", status=404)
        return _parse(Organization, rows[0])  # type: ignore[no-any-return]

    async def update(self, org: OrgRef, *, name: str | None = None, slug: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> Organization:
        """Change name, slug and/or metadata (needs ``org.update``: admins and owners)."""
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _check_name(name).strip()
        if slug is not None:
            changes["slug"] = _check_slug(slug)
        if metadata is not None:
            changes["metadata"] = _check_metadata(metadata)
        if not changes:
            raise errors.ValidationError("nothing to update: pass name, slug or metadata", code="empty_update")
        org_id = await self._org_id(org)
        client = await self._rest()
        with boundary():
            response = await client.from_("organizations").update(changes).eq("id", org_id).execute()
        if not response.data:
            await self.get(org_id)  # NotFound when it is hidden
            raise errors.PermissionDenied("you may not update this organization (needs org.update)",
                                          code="42501", status=403)
        return _parse(Organization, response.data[0])  # type: ignore[no-any-return]

    async def delete(self, org: OrgRef) -> None:
        """Delete an organization with its memberships and invitations (owners only)."""
        org_id = await self._org_id(org)
        client = await self._rest()
        with boundary():
            response = await client.from_("organizations").delete().eq("id", org_id).execute()
        if not response.data:
            await self.get(org_id)
            raise errors.PermissionDenied("you may not delete this organization (needs org.delete)",
                                          code="42501", status=403)

    # members ------------------------------------------------------------------------
    async def members(self, org: OrgRef) -> builtins.list[Membership]:
        """Members with their e-mail addresses, highest role first."""
        org_id = await self._org_id(org)
        rows = await self._rpc("org_members", {"org_id": org_id})
        return [_parse(Membership, {**row, "org_id": org_id}) for row in rows or []]

    async def add(self, org: OrgRef, user: UserRef, role: Role | str = Role.member) -> Membership:
        """Add an existing user (by id, or by e-mail) directly: service role only."""
        role = as_role(role)
        if self._scope.role != "service_role":
            raise errors.PermissionDenied("only the service role adds members directly; invite users instead",
                                          code="42501", status=403)
        org_id = await self._org_id(org)
        user_id = await self._find_user(user) if isinstance(user, str) and "@" in user else _user_id(user)
        return _parse(Membership, await self._rpc(  # type: ignore[no-any-return]
            "add_member", {"org_id": org_id, "user_id": user_id, "role": role.value}))

    async def _find_user(self, email: str) -> str:
        if not EMAIL_RE.match(email):
            raise errors.ValidationError(f"invalid e-mail address {email!r}", code="invalid_email")
        admin = self._admin_auth()
        page = 1
        while True:
            with boundary():
                users = await admin.list_users(page=page, per_page=1000)
            for u in users:
                if (u.email or "").lower() == email.lower():
                    return str(u.id)
            if len(users) < 1000:
                raise errors.NotFound(f"no user with e-mail {email}", code="user_not_found", status=404)
            page += 1

    async def set_role(self, org: OrgRef, user: UserRef, role: Role | str) -> Membership:
        """Change a member's role (needs ``members.manage`` and a rank at or above both roles)."""
        role = as_role(role)
        org_id, user_id = await self._org_id(org), _user_id(user)
        return _parse(Membership, await self._rpc(  # type: ignore[no-any-return]
            "set_member_role", {"org_id": org_id, "user_id": user_id, "role": role.value}))

    async def remove(self, org: OrgRef, user: UserRef) -> None:
        """Remove a member (the last owner cannot be removed)."""
        org_id, user_id = await self._org_id(org), _user_id(user)
        await self._rpc("remove_member", {"org_id": org_id, "user_id": user_id})

    async def leave(self, org: OrgRef) -> None:
        """Leave an organization (the last owner must transfer ownership first)."""
        await self._caller_id()
        await self._rpc("leave_organization", {"org_id": await self._org_id(org)})

    async def transfer(self, org: OrgRef, user: UserRef) -> None:
        """Make a member the owner; an owner caller becomes an admin."""
        org_id, user_id = await self._org_id(org), _user_id(user)
        await self._rpc("transfer_ownership", {"org_id": org_id, "user_id": user_id})

    # invitations --------------------------------------------------------------------
    async def invite(self, org: OrgRef, *, role: Role | str = Role.member, email: str | None = None,
                     expires_in: timedelta | int = timedelta(days=7), send_email: bool = False,
                     redirect_to: str | None = None) -> Invitation:
        """Create an invitation (needs ``invitations.manage``); its ``token`` is shown only here.

        With ``email`` only a user with that verified address may accept. With ``send_email``
        the auth service e-mails it (an invite to a new address, a magic link otherwise); the
        link signs the invitee in and lands on ``redirect_to`` with ``?invitation=<token>`` (an
        allowed redirect URL of the auth service), where the app calls ``accept``. Sending needs
        the service-role key.
        """
        role = as_role(role)
        if role is Role.owner:
            raise errors.ValidationError("invitations grant admin, member or viewer; transfer ownership instead",
                                         code="invalid_role")
        seconds = int(expires_in.total_seconds()) if isinstance(expires_in, timedelta) else expires_in
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 60 <= seconds <= 30 * 86400:
            raise errors.ValidationError("expires_in must be between 60 seconds and 30 days", code="invalid_expiry")
        if email is not None and (not isinstance(email, str) or not EMAIL_RE.match(email.strip())):
            raise errors.ValidationError(f"invalid e-mail address {email!r}", code="invalid_email")
        if send_email and email is None:
            raise errors.ValidationError("send_email needs the invitee's email", code="invalid_email")
        if send_email and redirect_to is None:
            raise errors.ValidationError("send_email needs redirect_to: the app page that accepts the invitation",
                                         code="invalid_redirect")
        if send_email and self._scope.core.settings.service_role_key is None:
            raise errors.ConfigError("sending invitation e-mail needs the service-role key (SUPABASE_SERVICE_ROLE_KEY)")
        if redirect_to is not None and (not isinstance(redirect_to, str)
                                        or not redirect_to.startswith(("http://", "https://"))):
            raise errors.ValidationError(f"redirect_to must be an http(s) URL, not {redirect_to!r}",
                                         code="invalid_redirect")
        org_id = await self._org_id(org)
        params: dict[str, Any] = {"org_id": org_id, "role": role.value, "expires_in_seconds": seconds}
        if email is not None:
            params["email"] = email.strip()
        invitation: Invitation = _parse(Invitation, await self._rpc("create_invitation", params))
        if send_email and invitation.email and invitation.token and redirect_to:
            await self._send(invitation.email, invitation.token, org_id, redirect_to)
            invitation = invitation.model_copy(update={"emailed": True})
        return invitation

    def _admin_auth(self) -> Any:
        key = self._scope.core.settings.service_role_key
        if key is None:
            raise errors.ConfigError("this needs the service-role key (SUPABASE_SERVICE_ROLE_KEY)")
        return self._scope.core.auth_client(token=key.get_secret_value()).admin

    async def _send(self, email: str, token: str, org_id: str, redirect_to: str) -> None:
        link = f"{redirect_to}{'&' if '?' in redirect_to else '?'}invitation={token}"
        data = {"appkit_invitation_org": org_id}
        try:
            with boundary():
                await self._admin_auth().invite_user_by_email(email, {"data": data, "redirect_to": link})
            return
        except errors.Conflict:
            pass  # an existing user: a magic link instead
        except errors.ValidationError as exc:
            if exc.code not in ("email_exists", "user_already_exists"):
                raise
        with boundary():
            await self._scope.core.auth_client(flow_type="implicit").sign_in_with_otp(
                {"email": email, "options": {"should_create_user": False, "email_redirect_to": link}})

    async def invitations(self, org: OrgRef, *, pending_only: bool = False) -> builtins.list[Invitation]:
        """An organization's invitations, newest first (needs ``invitations.manage``)."""
        org_id = await self._org_id(org)
        client = await self._rest()
        with boundary():
            response = await (client.from_("invitations").select(_INVITATION_COLUMNS).eq("org_id", org_id)
                              .order("created_at", desc=True).execute())
        found = [_parse(Invitation, row) for row in response.data or []]
        if not found:
            await self.get(org_id)  # NotFound when the organization is hidden
        return [i for i in found if i.status == "pending"] if pending_only else found

    async def revoke_invitation(self, invitation: Invitation | UUID | str) -> None:
        """Revoke a pending invitation (revoking twice is a no-op; an accepted one is a Conflict)."""
        inv_id = invitation.id if isinstance(invitation, Invitation) else _uuid(invitation, "invitation")
        if inv_id is None:
            raise errors.ValidationError(f"invalid invitation id {invitation!r}: expected a UUID",
                                         code="invalid_invitation")
        await self._rpc("revoke_invitation", {"invitation_id": str(inv_id)})

    async def lookup_invitation(self, token: str) -> InvitationPreview:
        """Preview an invitation by its token without accepting it."""
        return _parse(InvitationPreview,  # type: ignore[no-any-return]
                      await self._rpc("lookup_invitation", {"token": _check_token(token)}))

    async def accept(self, token: str) -> Membership:
        """Join the invitation's organization with its role (one RPC; a used token is a Conflict)."""
        token = _check_token(token)
        await self._caller_id()
        return _parse(Membership, await self._rpc("accept_invitation", {"token": token}))  # type: ignore[no-any-return]


class AsyncRbac:
    """Role and permission checks for the caller, answered by the database's RLS helpers."""

    def __init__(self, scope: AsyncScope) -> None:
        self._orgs = AsyncOrgs(scope)

    async def has(self, org: OrgRef, *, role: Role | str | None = None, permission: str | None = None) -> bool:
        """Whether the caller holds ``role`` (or a higher one) or ``permission`` in ``org``."""
        if (role is None) == (permission is None):
            raise errors.ValidationError("pass exactly one of role= or permission=", code="invalid_check")
        try:
            org_id = await self._orgs._org_id(org)
        except errors.NotFound:
            return False
        if role is not None:
            result = await self._orgs._rpc("has_org_role", {"org_id": org_id, "min_role": as_role(role).value})
        else:
            if not isinstance(permission, str) or not PERMISSION_RE.match(permission):
                raise errors.ValidationError(f"invalid permission name {permission!r} (e.g. members.manage)",
                                             code="invalid_permission")
            result = await self._orgs._rpc("has_org_permission", {"org_id": org_id, "permission": permission})
        return result is True

    async def require(self, org: OrgRef, *, role: Role | str | None = None, permission: str | None = None) -> None:
        """Raise ``errors.PermissionDenied`` unless ``has(...)``."""
        if not await self.has(org, role=role, permission=permission):
            what = f"role {as_role(role).value}" if role is not None else f"permission {permission}"
            label = org.slug if isinstance(org, Organization) else str(org)
            raise errors.PermissionDenied(f"{what} required in organization {label}", code="42501", status=403)


__all__ = ["AsyncOrgs", "AsyncRbac"]
