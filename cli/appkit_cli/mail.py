"""``appkit mail``: the e-mails and SMS the local auth service captured instead of sending."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from appkit.local import list_messages
from appkit_cli._common import (
    DbUrlOption,
    Format,
    OutputOption,
    WorkdirOption,
    console,
    emit_json,
    handle_errors,
    project,
)
from appkit_cli.db import target_db_url


@handle_errors
def mail(
    to: Annotated[str | None, typer.Option("--to", help="Only messages to this e-mail address or phone.",
                                           show_default=False)] = None,
    kind: Annotated[str | None, typer.Option("--type", help="signup, magiclink, recovery, invite, email_change, "
                                             "reauthentication, sms, ...", show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many, newest first.")] = 20,
    output: OutputOption = Format.pretty,
    json_out: Annotated[bool, typer.Option("--json", hidden=True, help="The same as -o json.")] = False,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """List captured auth e-mails and SMS with their links and codes (newest first)."""
    url = db_url or target_db_url(project(workdir), None)  # with --db-url no project folder is needed
    messages = list_messages(url, to, kind=kind, limit=limit)
    if json_out or output is Format.json:
        emit_json(messages)
        return
    if not messages:
        console.print("No messages captured.")
        return
    table = Table("when", "to", "type", "code")
    table.add_column("link", overflow="fold")
    for m in messages:
        table.add_row(str(m["created_at"])[:19], m["recipient"], m["type"], m["otp"] or "", m["link"] or "")
    console.print(table)
