"""``appkit ratelimit``: inspect and reset the token buckets of ``appkit.rate_limit``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from appkit.local import resolve_workdir
from appkit_cli._common import DbUrlOption, WorkdirOption, console, fail, handle_errors
from appkit_cli._tables import OutputOption, ReadOutput, print_rows
from appkit_cli.db import target_db_url

ratelimit_app = typer.Typer(help="Rate limits: show and reset token buckets.", no_args_is_help=True)


@ratelimit_app.command("show")
@handle_errors
def show(
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this (e.g. user:<uid>:).")] = "",
    limit: Annotated[int, typer.Option(min=1, max=100000, help="At most this many buckets.")] = 100,
    output: OutputOption = ReadOutput.table,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """List stored buckets (most recently used first) with their level refilled to now."""
    from appkit.ratelimit.admin import list_buckets

    buckets = list_buckets(target_db_url(resolve_workdir(workdir), db_url), prefix=prefix, limit=limit)

    def cell(row: dict[str, Any], column: str) -> str | None:
        if column == "level":
            return f"{row['level']:.2f}/{row['capacity']}"
        if column == "refill/s":
            return f"{row['refill_per_second']:g}"
        return None

    print_rows(output, buckets, ["key", "level", "refill/s", "updated_at"], empty="No rate-limit buckets.",
               cell=cell)


@ratelimit_app.command("reset")
@handle_errors
def reset(
    key: Annotated[str | None, typer.Argument(help="The exact stored key (as `show` prints it).",
                                              show_default=False)] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Reset every key starting with this instead.",
                                               show_default=False)] = None,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """Forget a key's buckets (every capacity and rate), so its next call starts full."""
    from appkit.ratelimit.admin import reset as reset_buckets

    if (key is None) == (prefix is None):
        raise fail("give a KEY or --prefix (one of them)")
    deleted = reset_buckets(target_db_url(resolve_workdir(workdir), db_url), key, prefix=prefix)
    console.print(f"Reset {deleted} bucket{'s' if deleted != 1 else ''}.")
