"""``appkit db advisors``: Supabase's advisor lints against the local database or any Postgres URL."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from appkit.db.advisors import KINDS, Finding, Kind, Level, fails, run_advisors
from appkit_cli._common import DbUrlOption, WorkdirOption, console, err_console, fail, handle_errors

_LEVELS = ("info", "warn", "error")
_FAIL_ON = ("none", *_LEVELS)
_OUTPUTS = ("pretty", "json")
_COLOUR = {Level.INFO: "cyan", Level.WARN: "yellow", Level.ERROR: "bold red"}


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in allowed:
        raise fail(f"invalid value {value!r} for {option}: use one of {', '.join(allowed)}")
    return text


@handle_errors
def advisors(
    kind: Annotated[str, typer.Option("--type", help="Advisors to run: all, security, performance.")] = "all",
    level: Annotated[str, typer.Option("--level", help="Lowest level to report: info, warn, error.")] = "warn",
    fail_on: Annotated[str, typer.Option("--fail-on", help="Exit 1 when a finding is at this level or above: "
                                                          "none, info, warn, error.")] = "none",
    output: Annotated[str, typer.Option("--output", "-o", help="Output format: pretty or json.")] = "pretty",
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """Check the database for security and performance issues (Supabase's advisors).

    The same lints, levels and texts as `supabase db advisors`; `-o json` prints its JSON.
    """
    from appkit.local import resolve_workdir
    from appkit_cli.db import target_db_url

    kind_value: Kind = KINDS[KINDS.index(_choice("--type", kind, KINDS))]
    min_level = Level.parse(_choice("--level", level, _LEVELS))
    fail_level = _choice("--fail-on", fail_on, _FAIL_ON)
    out = _choice("--output", output, _OUTPUTS)
    url = db_url or target_db_url(resolve_workdir(workdir), None)
    findings = run_advisors(url, kind=kind_value, min_level=min_level)
    if out == "json":
        console.print_json(json.dumps([f.as_dict() for f in findings]))
    elif findings:
        console.print(_table(findings))
    else:
        err_console.print("No issues found", highlight=False)
    threshold = None if fail_level == "none" else Level.parse(fail_level)
    if fails(findings, threshold):
        worst = max(findings, key=lambda f: f.level.rank).level
        raise fail(f"found {len(findings)} issue(s), the worst at {worst.value} (--fail-on {fail_level})")


def _table(findings: list[Finding]) -> Table:
    table = Table(show_lines=True)
    table.add_column("level")
    table.add_column("name")
    table.add_column("detail", overflow="fold")
    table.add_column("remediation", overflow="fold")
    for f in findings:
        table.add_row(f"[{_COLOUR[f.level]}]{f.level.value}[/]", f.name, escape(f.detail),
                      escape(f.lint.remediation))
    return table
