"""``appkit db``: migrations against the local database or any Postgres URL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from appkit.db.migrations import MigrationRunner, discover_migrations
from appkit.local import (
    LocalStack,
    StackPaths,
    read_info,
    reset_database,
    resolve_workdir,
    write_atomic,
)
from appkit_cli._common import DbUrlOption, WorkdirOption, console, fail, handle_errors

db_app = typer.Typer(help="Database migrations (migrate, status, reset, new) and advisors.", no_args_is_help=True)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def target_db_url(paths: StackPaths, db_url: str | None) -> str:
    if db_url:
        return db_url
    info = read_info(paths)
    if info is None:
        raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start` or pass --db-url")
    return info.db_url


@db_app.command("migrate")
@handle_errors
def migrate(workdir: WorkdirOption = None, db_url: DbUrlOption = None) -> None:
    """Apply pending migrations from supabase/migrations, each in its own transaction."""
    paths = resolve_workdir(workdir)
    migrations = discover_migrations(paths.migrations_dir)
    runner = MigrationRunner(target_db_url(paths, db_url))
    applied = runner.apply(migrations)
    for mig in applied:
        console.print(f"Applied [bold]{mig.path.name}[/]")
    console.print(f"{len(applied)} migration(s) applied; the database is up to date.")


@db_app.command("status")
@handle_errors
def status(
    workdir: WorkdirOption = None, db_url: DbUrlOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List local and applied migrations: applied, pending, drift or remote only."""
    paths = resolve_workdir(workdir)
    rows = MigrationRunner(target_db_url(paths, db_url)).status(discover_migrations(paths.migrations_dir))
    if json_out:
        import json

        console.print_json(json.dumps([{"version": r.version, "name": r.name, "state": r.state} for r in rows]))
        return
    table = Table("version", "name", "state")
    colour = {"applied": "green", "pending": "yellow", "drift": "bold red", "remote only": "magenta"}
    for r in rows:
        table.add_row(r.version, r.name, f"[{colour[r.state]}]{r.state}[/]")
    console.print(table)
    if any(r.drift for r in rows):
        raise typer.Exit(1)


@db_app.command("reset")
@handle_errors
def reset(workdir: WorkdirOption = None) -> None:
    """Recreate the local database, then re-apply migrations and seed."""
    paths = resolve_workdir(workdir)
    LocalStack(paths.workdir)  # validate config first
    reset_database(paths)
    console.print("Reset the local database: migrations and seed re-applied.")


@db_app.command("new")
@handle_errors
def new(name: Annotated[str, typer.Argument(help="Migration name, e.g. create_notes.")],
        workdir: WorkdirOption = None) -> None:
    """Create supabase/migrations/<timestamp>_<name>.sql."""
    if not _NAME_RE.match(name):
        raise fail(f"invalid migration name {name!r}: use letters, digits, '_' and '-'")
    paths = resolve_workdir(workdir)
    version = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    path = paths.migrations_dir / f"{version}_{name}.sql"
    if path.exists():
        raise fail(f"{path} already exists")
    paths.migrations_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, b"", 0o644)
    console.print(f"Created new migration at [bold]{path.relative_to(paths.workdir)}[/]")


from appkit_cli.advisors import advisors  # noqa: E402 - registered last; it looks up target_db_url here

db_app.command("advisors")(advisors)
