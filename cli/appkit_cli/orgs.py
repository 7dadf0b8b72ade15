"""``appkit orgs``: organizations, members and invitations, administered as the service role."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from appkit.local import read_info, resolve_workdir
from appkit_cli._common import WorkdirOption, console, fail, handle_errors

if TYPE_CHECKING:
    from appkit import AppKit
    from appkit.orgs import Invitation, Membership, Organization

orgs_app = typer.Typer(help="Organizations, members and invitations (as the service role).", no_args_is_help=True)

ROLES = "owner, admin, member or viewer"


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
UserArg = Annotated[str, typer.Argument(help="User id or e-mail address.", show_default=False)]


@contextmanager
def admin_client(workdir: Any) -> Iterator[AppKit]:
    """The service-role client: SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, else the running local stack."""
    from appkit import AppKit

    url = os.environ.get("SUPABASE_URL")
    key = os.environ.get("SUPABASE_SERVICE_ROLE_KEY")
    if url and key:
        app = AppKit(url=url, anon_key=os.environ.get("SUPABASE_ANON_KEY") or key, service_role_key=key)
    else:
        paths = resolve_workdir(workdir)
        info = read_info(paths)
        if info is None:
            raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start`, or set "
                       "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
        app = AppKit(url=info.api_url, anon_key=info.anon_key, service_role_key=info.service_role_key)
    try:
        yield app.admin
    finally:
        app.close()


def _json_arg(value: str | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise fail(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise fail(f"{what} must be a JSON object")
    return data


def _user_id(app: AppKit, org: str, user: str) -> str:
    """A member's id from an id or an e-mail address (looked up among the organization's members)."""
    if "@" not in user:
        return user
    for m in app.orgs.members(org):
        if (m.email or "").lower() == user.lower():
            return str(m.user_id)
    raise fail(f"{user} is not a member of {org}")


def _dump(items: list[Any]) -> None:
    console.print_json(json.dumps([i.model_dump(mode="json") for i in items]))


def _org_table(orgs: list[Organization]) -> Table:
    table = Table("id", "slug", "name", "created")
    for o in orgs:
        table.add_row(str(o.id), o.slug, o.name, o.created_at.strftime("%Y-%m-%d %H:%M"))
    return table


def _member_table(members: list[Membership]) -> Table:
    table = Table("user id", "email", "role", "since")
    for m in members:
        table.add_row(str(m.user_id), m.email or "", m.role.value, m.created_at.strftime("%Y-%m-%d %H:%M"))
    return table


def _invitation_table(invitations: list[Invitation]) -> Table:
    table = Table("id", "email", "role", "status", "expires")
    for i in invitations:
        table.add_row(str(i.id), i.email or "(anyone with the token)", i.role.value, i.status,
                      i.expires_at.strftime("%Y-%m-%d %H:%M"))
    return table


@orgs_app.command("list")
@handle_errors
def list_(workdir: WorkdirOption = None, output: OutputOption = Output.table,
          limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 1000) -> None:
    """List every organization."""
    with admin_client(workdir) as app:
        orgs = app.orgs.list(limit=limit)
    if output is Output.json:
        _dump(orgs)
    elif orgs:
        console.print(_org_table(orgs))
    else:
        console.print("No organizations.")


@orgs_app.command("show")
@handle_errors
def show(org: OrgArg, workdir: WorkdirOption = None, output: OutputOption = Output.table) -> None:
    """Show an organization and its members."""
    with admin_client(workdir) as app:
        found = app.orgs.get(org)
        members = app.orgs.members(found)
    if output is Output.json:
        console.print_json(json.dumps({**found.model_dump(mode="json", exclude={"role"}),
                                       "members": [m.model_dump(mode="json") for m in members]}))
        return
    console.print(_org_table([found]))
    if found.metadata:
        console.print("metadata:", json.dumps(found.metadata), highlight=False, markup=False)
    console.print(_member_table(members))


@orgs_app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="Display name.", show_default=False)],
    slug: Annotated[str, typer.Argument(help="Unique slug: lowercase letters, digits, hyphens.", show_default=False)],
    owner: Annotated[str, typer.Option("--owner", help="The owner: user id or e-mail address.", show_default=False)],
    metadata: Annotated[str | None, typer.Option("--metadata", help="A JSON object.", show_default=False)] = None,
    workdir: WorkdirOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an organization owned by an existing user."""
    meta = _json_arg(metadata, "--metadata")
    with admin_client(workdir) as app:
        org = app.orgs.create(name, slug, metadata=meta, owner=owner)
    if output is Output.json:
        _dump([org])
    else:
        console.print(f"Created organization [bold]{org.slug}[/] ({org.id}).")


@orgs_app.command("update")
@handle_errors
def update(
    org: OrgArg,
    name: Annotated[str | None, typer.Option("--name", help="New name.", show_default=False)] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="New slug.", show_default=False)] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="Replace metadata (a JSON object).",
                                                 show_default=False)] = None,
    workdir: WorkdirOption = None,
) -> None:
    """Change an organization's name, slug or metadata."""
    meta = _json_arg(metadata, "--metadata")
    with admin_client(workdir) as app:
        updated = app.orgs.update(org, name=name, slug=slug, metadata=meta)
    console.print(f"Updated organization [bold]{updated.slug}[/].")


@orgs_app.command("delete")
@handle_errors
def delete(org: OrgArg, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
           workdir: WorkdirOption = None) -> None:
    """Delete an organization with its memberships and invitations."""
    with admin_client(workdir) as app:
        found = app.orgs.get(org)
        if not yes:
            if not os.isatty(0):
                raise fail(f"deleting {found.slug} needs --yes when not run interactively")
            typer.confirm(f"Delete organization {found.slug} ({found.id}) and all its memberships?", abort=True)
        app.orgs.delete(found)
    console.print(f"Deleted organization [bold]{found.slug}[/].")


@orgs_app.command("members")
@handle_errors
def members(org: OrgArg, workdir: WorkdirOption = None, output: OutputOption = Output.table) -> None:
    """List an organization's members, highest role first."""
    with admin_client(workdir) as app:
        found = app.orgs.members(org)
    if output is Output.json:
        _dump(found)
    else:
        console.print(_member_table(found))


@orgs_app.command("add")
@handle_errors
def add(org: OrgArg, user: UserArg,
        role: Annotated[str, typer.Option("--role", help=f"Role: {ROLES}.")] = "member",
        workdir: WorkdirOption = None) -> None:
    """Add an existing user to an organization."""
    with admin_client(workdir) as app:
        m = app.orgs.add(org, user, role)
    console.print(f"Added {user} to {org} as [bold]{m.role.value}[/].")


@orgs_app.command("remove")
@handle_errors
def remove(org: OrgArg, user: UserArg, workdir: WorkdirOption = None) -> None:
    """Remove a member (never the last owner)."""
    with admin_client(workdir) as app:
        app.orgs.remove(org, _user_id(app, org, user))
    console.print(f"Removed {user} from {org}.")


@orgs_app.command("role")
@handle_errors
def role(org: OrgArg, user: UserArg,
         new_role: Annotated[str, typer.Argument(metavar="ROLE", help=f"{ROLES}.", show_default=False)],
         workdir: WorkdirOption = None) -> None:
    """Change a member's role."""
    with admin_client(workdir) as app:
        m = app.orgs.set_role(org, _user_id(app, org, user), new_role)
    console.print(f"{user} is now [bold]{m.role.value}[/] in {org}.")


@orgs_app.command("transfer")
@handle_errors
def transfer(org: OrgArg, user: UserArg, workdir: WorkdirOption = None) -> None:
    """Make a member the owner; the other owners become admins."""
    with admin_client(workdir) as app:
        app.orgs.transfer(org, _user_id(app, org, user))
    console.print(f"{user} now owns {org}.")


@orgs_app.command("invite")
@handle_errors
def invite(
    org: OrgArg,
    role: Annotated[str, typer.Option("--role", help="admin, member or viewer.")] = "member",
    email: Annotated[str | None, typer.Option("--email", help="Only a user with this verified e-mail may accept.",
                                              show_default=False)] = None,
    expires_in: Annotated[int, typer.Option("--expires-in", help="Seconds until it expires (60 to 2592000).")]
    = 7 * 86400,
    send: Annotated[bool, typer.Option("--send", help="E-mail it through the auth service (needs --email and "
                                       "--redirect-to).")] = False,
    redirect_to: Annotated[str | None, typer.Option("--redirect-to", help="The app page that accepts invitations.",
                                                    show_default=False)] = None,
    workdir: WorkdirOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create an invitation and print its token (shown only once)."""
    with admin_client(workdir) as app:
        inv = app.orgs.invite(org, role=role, email=email, expires_in=expires_in, send_email=send,
                              redirect_to=redirect_to)
    if output is Output.json:
        _dump([inv])
        return
    console.print(f"Invitation {inv.id} to {org} as [bold]{inv.role.value}[/], expires {inv.expires_at:%Y-%m-%d %H:%M}"
                  + (" (e-mailed)" if inv.emailed else ""))
    console.print(f"token: {inv.token}", highlight=False, markup=False, soft_wrap=True)


@orgs_app.command("invitations")
@handle_errors
def invitations(org: OrgArg,
                pending: Annotated[bool, typer.Option("--pending", help="Only pending ones.")] = False,
                workdir: WorkdirOption = None, output: OutputOption = Output.table) -> None:
    """List an organization's invitations, newest first."""
    with admin_client(workdir) as app:
        found = app.orgs.invitations(org, pending_only=pending)
    if output is Output.json:
        console.print_json(json.dumps([{**i.model_dump(mode="json", exclude={"token", "emailed"}), "status": i.status}
                                       for i in found]))
    elif found:
        console.print(_invitation_table(found))
    else:
        console.print("No invitations.")


@orgs_app.command("revoke")
@handle_errors
def revoke(invitation: Annotated[str, typer.Argument(help="Invitation id.", show_default=False)],
           workdir: WorkdirOption = None) -> None:
    """Revoke a pending invitation."""
    with admin_client(workdir) as app:
        app.orgs.revoke_invitation(invitation)
    console.print(f"Revoked invitation {invitation}.")
