"""Read-command output: a Rich table for people, ``-o json`` for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import typer
from pydantic import BaseModel
from rich.table import Table

from appkit_cli._common import console


class ReadOutput(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[ReadOutput, typer.Option("--output", "-o", help="Output format.")]


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def print_json(value: Any) -> None:
    console.print_json(json.dumps(_jsonable(value)))


def print_rows(output: ReadOutput, rows: Sequence[BaseModel | dict[str, Any]], columns: Sequence[str],
               *, empty: str, cell: Any = None) -> None:
    """``rows`` as a JSON array or as a table of ``columns`` (``cell(row, column)`` formats a cell)."""
    if output is ReadOutput.json:
        print_json(list(rows))
        return
    if not rows:
        console.print(empty)
        return
    table = Table(*columns)
    for row in rows:
        data = row.model_dump() if isinstance(row, BaseModel) else row
        table.add_row(*[(cell(data, c) if cell else None) or _text(data.get(c)) for c in columns])
    console.print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
