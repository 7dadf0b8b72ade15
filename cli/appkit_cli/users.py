"""``appkit users``: manage auth users through ``app.admin.users``; import/export them with their hashes."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from appkit_cli._common import (
    DbUrlOption,
    Format,
    OutputOption,
    ServiceKeyOption,
    UrlOption,
    WorkdirOption,
    admin_client,
    console,
    emit_json,
    err_console,
    fail,
    handle_errors,
)

if TYPE_CHECKING:
    from appkit import AppKit
    from appkit.users import User, Users
    from appkit.users.records import UserRecord

users_app = typer.Typer(help="Auth users: list, show, create, invite, update, ban, sign out, import, export.",
                        no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="The user's id or email.", show_default=False)]
JsonObject = Annotated[str | None, typer.Option(help="A JSON object.", show_default=False)]


def _client(workdir: Path | None, url: str | None, key: str | None) -> AppKit:
    return admin_client(workdir, url, key)


def _json_object(value: str | None, flag: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        raise fail(f"{flag} is not valid JSON") from None
    if not isinstance(data, dict):
        raise fail(f"{flag} must be a JSON object")
    return data


def _resolve(users: Users, ref: str) -> str:
    """A user id from an id or an email address (exact match, case-insensitive)."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    if "@" not in ref:
        raise fail(f"{ref!r} is neither a user id nor an email address")
    page = users.list(filter=ref, per_page=1000)
    for user in page.users:
        if (user.email or "").lower() == ref.lower():
            return user.id
    raise fail(f"no user with email {ref}")


def _row(user: User) -> dict[str, Any]:
    return user.model_dump(mode="json")


def _status(user: User) -> str:
    if user.banned_until:
        return "banned"
    if user.email_confirmed_at or user.phone_confirmed_at:
        return "confirmed"
    return "invited" if user.invited_at else "unconfirmed"


def _show(user: User, output: Format) -> None:
    if output is Format.json:
        emit_json(_row(user))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    fields = [("id", user.id), ("email", user.email or ""), ("phone", user.phone or ""),
              ("status", _status(user)), ("role", user.role or ""),
              ("created", str(user.created_at)), ("last sign-in", str(user.last_sign_in_at or "")),
              ("banned until", str(user.banned_until or "")),
              ("app_metadata", json.dumps(user.app_metadata)), ("user_metadata", json.dumps(user.user_metadata)),
              ("factors", ", ".join(f"{f.factor_type}:{f.status}" for f in user.factors or []))]
    for key, value in fields:
        table.add_row(key, value)
    console.print(table, soft_wrap=True)


@users_app.command("list")
@handle_errors
def list_(
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
    page: Annotated[int, typer.Option(min=1, help="Page number.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=1000, help="Users per page.")] = 50,
    filter: Annotated[str | None, typer.Option("--filter", help="Part of an email, phone or name.",
                                               show_default=False)] = None,
    output: OutputOption = Format.pretty,
) -> None:
    """List users, newest first."""
    with _client(workdir, url, service_role_key) as app:
        result = app.admin.users.list(page=page, per_page=per_page, filter=filter)
    if output is Format.json:
        emit_json({"users": [_row(u) for u in result.users], "total": result.total, "page": result.page,
                   "per_page": result.per_page, "next_page": result.next_page})
        return
    table = Table("id", "email", "phone", "status", "created", "last sign-in")
    for u in result.users:
        table.add_row(u.id, u.email or "", u.phone or "", _status(u), u.created_at.strftime("%Y-%m-%d %H:%M"),
                      u.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if u.last_sign_in_at else "")
    console.print(table)
    shown = (page - 1) * per_page + len(result.users)
    console.print(f"{shown} of {result.total} user(s)" + (f"; next: --page {result.next_page}"
                                                            if result.next_page else ""))


@users_app.command("show")
@handle_errors
def show(user: UserArg, workdir: WorkdirOption = None, url: UrlOption = None,
         service_role_key: ServiceKeyOption = None, output: OutputOption = Format.pretty) -> None:
    """Show one user."""
    with _client(workdir, url, service_role_key) as app:
        _show(app.admin.users.get(_resolve(app.admin.users, user)), output)


@users_app.command("create")
@handle_errors
def create(
    email: Annotated[str | None, typer.Option(help="Email address.", show_default=False)] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number.", show_default=False)] = None,
    password: Annotated[str | None, typer.Option(help="Password (omit for a passwordless user).",
                                                 show_default=False)] = None,
    confirm: Annotated[bool, typer.Option("--confirm/--no-confirm",
                                          help="Mark the email/phone as confirmed.")] = True,
    metadata: JsonObject = None, claims: JsonObject = None,
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
    output: OutputOption = Format.pretty,
) -> None:
    """Create a user (nothing is sent to them)."""
    if not email and not phone:
        raise fail("give --email or --phone")
    user_meta, app_meta = _json_object(metadata, "--metadata"), _json_object(claims, "--claims")
    with _client(workdir, url, service_role_key) as app:
        user = app.admin.users.create(email=email, phone=phone, password=password, email_confirm=confirm and
                                      bool(email), phone_confirm=confirm and bool(phone), user_metadata=user_meta,
                                      app_metadata=app_meta)
    _show(user, output)


@users_app.command("invite")
@handle_errors
def invite(
    email: Annotated[str, typer.Argument(help="Email address to invite.", show_default=False)],
    redirect_to: Annotated[str | None, typer.Option(help="Where the link leads after sign-in.",
                                                    show_default=False)] = None,
    metadata: JsonObject = None,
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
    output: OutputOption = Format.pretty,
) -> None:
    """Create the user and e-mail them an invitation link."""
    data = _json_object(metadata, "--metadata")
    with _client(workdir, url, service_role_key) as app:
        _show(app.admin.users.invite(email, data=data, redirect_to=redirect_to), output)


@users_app.command("update")
@handle_errors
def update(
    user: UserArg,
    email: Annotated[str | None, typer.Option(help="New email address.", show_default=False)] = None,
    phone: Annotated[str | None, typer.Option(help="New phone number.", show_default=False)] = None,
    confirm: Annotated[bool | None, typer.Option("--confirm/--no-confirm", show_default=False,
                                                 help="Mark the email as confirmed or not.")] = None,
    metadata: JsonObject = None,
    role: Annotated[str | None, typer.Option(help="The role claim of the user's tokens.", show_default=False)] = None,
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
    output: OutputOption = Format.pretty,
) -> None:
    """Change a user's email, phone, confirmation, metadata (merged) or role."""
    user_meta = _json_object(metadata, "--metadata")
    if email is None and phone is None and confirm is None and user_meta is None and role is None:
        raise fail("nothing to update: give --email, --phone, --confirm, --metadata or --role")
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        _show(app.admin.users.update(uid, email=email, phone=phone, email_confirm=confirm, user_metadata=user_meta,
                                     role=role), output)


@users_app.command("delete")
@handle_errors
def delete(user: UserArg,
           soft: Annotated[bool, typer.Option("--soft", help="Keep an anonymised row instead of removing it.")] = False,
           workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None) -> None:
    """Delete a user (and their sessions, identities and factors)."""
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        app.admin.users.delete(uid, soft=soft)
    console.print(f"Deleted user {uid}" + (" (soft)." if soft else "."))


@users_app.command("ban")
@handle_errors
def ban(user: UserArg,
        for_: Annotated[str | None, typer.Option("--for", help="How long: 24h, 90m, 1h30m (default: ~100 years).",
                                                 show_default=False)] = None,
        workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None) -> None:
    """Ban a user: no sign-in or token refresh; their sessions end."""
    from appkit.users import BAN_FOREVER

    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        banned = app.admin.users.ban(uid, for_ or BAN_FOREVER)
    console.print(f"Banned user {uid} until {banned.banned_until}.")


@users_app.command("unban")
@handle_errors
def unban(user: UserArg, workdir: WorkdirOption = None, url: UrlOption = None,
          service_role_key: ServiceKeyOption = None) -> None:
    """Lift a user's ban."""
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        app.admin.users.unban(uid)
    console.print(f"Unbanned user {uid}.")


@users_app.command("set-password")
@handle_errors
def set_password(
    user: UserArg,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          help="The new password (prompted for when omitted).")],
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
) -> None:
    """Set a user's password."""
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        app.admin.users.set_password(uid, password)
    console.print(f"Set the password of user {uid}.")


@users_app.command("set-claims")
@handle_errors
def set_claims(
    user: UserArg,
    claims: Annotated[str, typer.Argument(help='A JSON object merged into app_metadata, e.g. \'{"plan": "pro"}\''
                                          ' (null removes a key).', show_default=False)],
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
    output: OutputOption = Format.pretty,
) -> None:
    """Merge custom claims into a user's app_metadata (they appear in the next access token)."""
    data = _json_object(claims, "CLAIMS")
    assert data is not None
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        _show(app.admin.users.set_app_metadata(uid, data), output)


@users_app.command("sign-out")
@handle_errors
def sign_out(user: UserArg, workdir: WorkdirOption = None, url: UrlOption = None,
             service_role_key: ServiceKeyOption = None) -> None:
    """End every session of a user (refresh tokens stop working at once)."""
    with _client(workdir, url, service_role_key) as app:
        uid = _resolve(app.admin.users, user)
        app.admin.users.sign_out(uid)
    console.print(f"Signed out every session of user {uid}.")


# import / export ---------------------------------------------------------------
FormatOpt = Annotated[str | None, typer.Option("--format", help="json or csv (default: from the file name).",
                                               show_default=False)]


def _db_url(workdir: Path | None, db_url: str | None) -> str | None:
    from appkit.local import read_info, resolve_workdir

    if db_url:
        return db_url
    info = read_info(resolve_workdir(workdir))
    return info.db_url if info is not None else None


def _progress(total: int, label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=not err_console.is_terminal, transient=True)
    task = progress.add_task(label, total=total)
    progress.start()
    return (lambda done: progress.update(task, completed=done)), progress.stop


@users_app.command("import")
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(help="A .json or .csv file (see `appkit users export`); - for stdin.",
                                         show_default=False)],
    fmt: FormatOpt = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing",
                                                help="Skip users whose id/email/phone exists.")] = False,
    db_url: DbUrlOption = None,
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
) -> None:
    """Import users with their bcrypt password hashes (all or nothing).

    Goes straight to Postgres (--db-url, or the local stack's database) in one transaction;
    with only --url/--service-role-key it creates them one by one through the admin API
    (undoing its own inserts if one fails).
    """
    from appkit.users import records

    form = records.format_of(file if str(file) != "-" else "-.json", fmt)
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    items = records.parse(text, form)
    if not items:
        raise fail(f"{file} holds no users")
    target = _db_url(workdir, db_url) if not (url and service_role_key and not db_url) else None
    update, stop = _progress(len(items), "importing users")
    try:
        if target is not None:
            from appkit.users.bulk import import_users

            result = import_users(target, items, skip_existing=skip_existing, on_progress=update)
            imported, skipped = result.imported, result.skipped
        else:
            with _client(workdir, url, service_role_key) as app:
                imported, skipped = _import_api(app, items, skip_existing, update)
    finally:
        stop()
    console.print(f"Imported {imported} user(s)" + (f", skipped {skipped} existing." if skipped else "."))


def _import_api(app: AppKit, items: Sequence[UserRecord], skip_existing: bool,
                update: Callable[[int], None]) -> tuple[int, int]:
    from appkit import errors

    users = app.admin.users
    created: list[str] = []
    skipped = 0

    def one(r: UserRecord) -> str | None:
        try:
            user = users.create(id=r.id, email=r.email, phone=r.phone, password_hash=r.password_hash,
                                email_confirm=r.email_confirmed_at is not None,
                                phone_confirm=r.phone_confirmed_at is not None, role=r.role,
                                user_metadata=r.user_metadata, app_metadata=r.app_metadata)
        except errors.Conflict:
            if skip_existing:
                return None
            raise
        return user.id

    with ThreadPoolExecutor(8) as pool:
        try:
            for n, uid in enumerate(pool.map(one, items), start=1):
                if uid is None:
                    skipped += 1
                else:
                    created.append(uid)
                update(n)
        except BaseException:
            for uid in created:  # nothing half-done: remove what this run added
                users.delete(uid)
            raise
    return len(created), skipped


@users_app.command("export")
@handle_errors
def export(
    file: Annotated[Path, typer.Argument(help="A .json or .csv file to write; - for stdout (JSON unless --format).",
                                         show_default=False)],
    fmt: FormatOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    db_url: DbUrlOption = None, workdir: WorkdirOption = None,
) -> None:
    """Export every user with their password hash (reads the database: --db-url or the local stack's)."""
    from appkit.local import write_atomic
    from appkit.users import records
    from appkit.users.bulk import export_users

    to_stdout = str(file) == "-"
    form = records.format_of("-.json" if to_stdout and not fmt else file, fmt)
    if not to_stdout and file.exists() and not force:
        raise fail(f"{file} already exists (use --force to overwrite)")
    target = _db_url(workdir, db_url)
    if target is None:
        raise fail("export reads password hashes from the database: pass --db-url or run `appkit start`")
    items = list(export_users(target))
    text = records.dump(items, form)
    if to_stdout:
        sys.stdout.write(text)
        return
    write_atomic(file, text.encode(), 0o600)
    console.print(f"Exported {len(items)} user(s) to {file}.")
