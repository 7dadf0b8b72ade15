"""``appkit schema``: ship appkit's own migrations into a project and report their state."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from appkit.local import StackPaths, read_info, resolve_workdir
from appkit_cli._common import DbUrlOption, WorkdirOption, console, err_console, fail, handle_errors

schema_app = typer.Typer(help="appkit's own schema: copy its migrations into the project, show their state.",
                         no_args_is_help=True)


class Output(StrEnum):
    table = "table"
    json = "json"


def ship(paths: StackPaths) -> tuple[list[str], bool]:
    """Copy the bundled migrations the project lacks and expose schema appkit in config.toml.

    Returns the copied file names and whether config.toml changed.
    """
    from appkit.db.api_config import add_api_schema
    from appkit.db.bundled import copy_missing
    from appkit.local import write_atomic

    config_changed = False
    new_text: str | None = None
    if paths.config_file.exists():
        text = paths.config_file.read_text(encoding="utf-8")
        new_text = add_api_schema(text, "appkit")  # validates before anything is written
        config_changed = new_text != text
    written = copy_missing(paths.migrations_dir)
    if new_text is not None and config_changed:
        write_atomic(paths.config_file, new_text.encode(), 0o644)
    return [p.name for p in written], config_changed


@schema_app.command("add")
@handle_errors
def add(workdir: WorkdirOption = None) -> None:
    """Copy the appkit migrations this project does not have yet into supabase/migrations/ and add
    "appkit" to [api] schemas in supabase/config.toml."""
    paths = resolve_workdir(workdir)
    if not paths.config_file.exists():
        raise fail(f"{paths.config_file} does not exist; run `appkit init` first")
    written, config_changed = ship(paths)
    for name in written:
        console.print(f"Copied [bold]supabase/migrations/{name}[/]")
    if config_changed:
        console.print('Added "appkit" to [api] schemas in supabase/config.toml (restart the stack to serve it)')
    if written:
        console.print(f"{len(written)} appkit migration(s) added; apply them with `appkit db migrate` "
                      "(or `supabase db push`).")
    else:
        console.print("The project already has every appkit migration.")


@schema_app.command("status")
@handle_errors
def status(
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", envvar="SUPABASE_URL", show_default=False,
        help="API URL to check that schema appkit is exposed (default: the local stack's).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """List each appkit migration as applied, missing or changed in the database, and check that
    the API exposes schema appkit. Exits 1 when a migration changed or the schema is not exposed."""
    from appkit.db.api_config import api_schemas
    from appkit.db.bundled import project_copies
    from appkit.db.schema_status import EXPOSE_HINT, bundled_states, probe_exposed

    paths = resolve_workdir(workdir)
    info = read_info(paths)
    url = db_url or (info.db_url if info else None)
    if url is None:
        raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start` or pass --db-url")
    states = bundled_states(url)
    copies = project_copies(paths.migrations_dir)

    exposed: bool | None = None
    how = ""
    if api_url:
        key = os.environ.get("SUPABASE_SERVICE_ROLE_KEY") or os.environ.get("SUPABASE_ANON_KEY")
        if not key:
            raise fail("checking a hosted API needs SUPABASE_ANON_KEY or SUPABASE_SERVICE_ROLE_KEY")
        exposed, how = probe_exposed(api_url, key), f"API {api_url}"
    elif info is not None and not db_url:
        exposed, how = probe_exposed(info.api_url, info.anon_key), f"local API {info.api_url}"
    elif paths.config_file.exists():
        schemas = api_schemas(paths.config_file.read_text(encoding="utf-8"))
        exposed, how = "appkit" in (schemas or []), "supabase/config.toml [api] schemas"

    if output is Output.json:
        console.print_json(json.dumps({
            "migrations": [{"name": s.key, "state": s.state, "version": s.version,
                            "file": copies[s.key].name if s.key in copies else None} for s in states],
            "exposed": exposed, "checked": how or None,
        }))
    else:
        table = Table("migration", "state", "applied as", "project file")
        colour = {"applied": "green", "missing": "yellow", "changed": "bold red"}
        for s in states:
            table.add_row(s.key, f"[{colour[s.state]}]{s.state}[/]", s.version or "-",
                          copies[s.key].name if s.key in copies else "-")
        console.print(table)
        if exposed is None:
            console.print("Schema appkit exposure: not checked (no API URL and no config.toml)")
        elif exposed:
            console.print(f"Schema appkit is exposed ({escape(how)}).")
        else:
            err_console.print(f"Schema appkit is NOT exposed ({escape(how)}): {escape(EXPOSE_HINT)}", highlight=False)
        missing = [s.key for s in states if s.state == "missing"]
        if missing:
            copied = all(k in copies for k in missing)
            step = "appkit db migrate" if copied else "appkit schema add, then appkit db migrate"
            console.print(f"{len(missing)} appkit migration(s) missing: run `{step}`.")
    if any(s.state == "changed" for s in states) or exposed is False:
        raise typer.Exit(1)
