"""``appkit audit``: list and follow the audit log, list audited tables, purge old entries."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from appkit.local import resolve_workdir
from appkit_cli._common import DbUrlOption, WorkdirOption, console, err_console, fail, handle_errors
from appkit_cli._tables import OutputOption, ReadOutput, print_json, print_rows
from appkit_cli.db import target_db_url

audit_app = typer.Typer(help="Audit log: list, tail (follow live), tables, purge.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

OrgOpt = Annotated[str | None, typer.Option("--org", help="Only this organization's entries (id).",
                                            show_default=False)]
TableOpt = Annotated[str | None, typer.Option("--table", help="Only this table (schema.name).", show_default=False)]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only changes made by this user id.",
                                              show_default=False)]
COLUMNS = ["id", "at", "actor", "role", "action", "table", "pk", "changes"]


def parse_when(value: str | None, what: str) -> datetime | None:
    """An ISO-8601 time (UTC when no offset) or a duration ago: 30s, 15m, 2h, 7d, 1w."""
    if value is None:
        return None
    m = _DURATION.match(value.strip())
    if m:
        return datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise fail(f"{what}: expected an ISO time (2026-01-31T12:00) or a duration like 15m, 2h, 7d; "
                   f"got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(value: str, what: str) -> timedelta:
    m = _DURATION.match(value.strip())
    if not m:
        raise fail(f"{what}: expected a duration like 30s, 15m, 2h, 90d, 1w; got {value!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _cell(row: dict[str, Any], column: str) -> str | None:
    if column == "table":
        return f"{row['table_schema']}.{row['table_name']}"
    if column == "pk":
        return ",".join(f"{k}={v}" for k, v in (row["pk"] or {}).items())
    if column == "changes":
        data = row["new"] if row["action"] != "DELETE" else row["old"]
        return json.dumps(data, default=str)[:120] if data else ""
    if column == "at":
        return str(row["at"].isoformat(sep=" ", timespec="seconds"))
    return None


@audit_app.command("list")
@handle_errors
def list_(
    org: OrgOpt = None,
    table: TableOpt = None,
    actor: ActorOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO) or duration ago (2h, 7d).",
                                              show_default=False)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time (ISO) or duration ago.",
                                              show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    output: OutputOption = ReadOutput.table,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """List audit entries, newest first."""
    from appkit.audit.admin import list_entries
    from appkit.audit.models import audit_filter

    f = audit_filter(org=org, table=table, actor=actor, since=parse_when(since, "--since"),
                     until=parse_when(until, "--until"), limit=limit)
    entries = list_entries(target_db_url(resolve_workdir(workdir), db_url), f)
    print_rows(output, entries, COLUMNS, empty="No audit entries.", cell=_cell)


@audit_app.command("tail")
@handle_errors
def tail(
    org: OrgOpt = None,
    table: TableOpt = None,
    actor: ActorOpt = None,
    backlog: Annotated[int, typer.Option("--backlog", "-n", min=0, max=1000,
                                         help="Print the last N matching entries first.")] = 10,
    interval: Annotated[float, typer.Option(min=0.05, max=3600, help="Seconds between polls.")] = 1.0,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Exit after printing this many entries.",
                                              show_default=False)] = None,
    output: OutputOption = ReadOutput.table,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """Follow the audit log live (oldest first; Ctrl-C stops). `-o json` prints one JSON object per line."""
    from appkit.audit.admin import follow
    from appkit.audit.models import audit_filter

    f = audit_filter(org=org, table=table, actor=actor)
    def ready() -> None:
        err_console.print("Following the audit log (Ctrl-C stops).", highlight=False)
        err_console.file.flush()

    entries = follow(target_db_url(resolve_workdir(workdir), db_url), f, interval=interval, backlog=backlog,
                     on_ready=ready)
    for printed, entry in enumerate(entries, start=1):
        if output is ReadOutput.json:
            console.print(json.dumps(entry.model_dump(mode="json")), highlight=False, soft_wrap=True)
        else:
            row = entry.model_dump()
            cells = [_cell(row, c) or ("" if row.get(c) is None else str(row[c])) for c in COLUMNS]
            console.print("  ".join(cells), highlight=False, soft_wrap=True)
        console.file.flush()  # a pipe is block-buffered: show each entry as it comes
        if count is not None and printed >= count:
            break


@audit_app.command("tables")
@handle_errors
def tables(output: OutputOption = ReadOutput.table, workdir: WorkdirOption = None,
           db_url: DbUrlOption = None) -> None:
    """List the tables being audited."""
    from appkit.audit.admin import audited_tables

    names = audited_tables(target_db_url(resolve_workdir(workdir), db_url))
    if output is ReadOutput.json:
        print_json(names)
        return
    table = Table("audited table")
    for n in names:
        table.add_row(n)
    console.print(table if names else "No audited tables.")


@audit_app.command("purge")
@handle_errors
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Delete entries older than this (30d, 12w).")],
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """Delete audit entries older than a duration (retention)."""
    from appkit.audit.admin import purge as purge_entries

    deleted = purge_entries(target_db_url(resolve_workdir(workdir), db_url), _duration(older_than, "--older-than"))
    console.print(f"Deleted {deleted} audit entr{'ies' if deleted != 1 else 'y'}.")
