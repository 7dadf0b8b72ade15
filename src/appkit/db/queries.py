"""Named SQL queries from ``.sql`` files: ``-- name: x`` blocks loaded once into a dict.

A block starts with ``-- name: <identifier>`` and a one-line ``--`` description, and runs to
the next ``-- name:`` line. Python refers to queries by name, so SQL is reviewed as SQL.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import LiteralString

from appkit.errors import ConfigError

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for each ``-- name: <name>`` block; the block's other ``--`` lines are its
    description and stay in the SQL (Postgres ignores them). The header before the first block is ignored."""
    out: dict[str, LiteralString] = {}
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        name = mark.group(1)
        body = text[mark.end():end].strip()
        if name in out:
            raise ConfigError(f"query {name!r} is defined twice")
        if not body:
            raise ConfigError(f"query {name!r} is empty")
        out[name] = body  # the file is part of the package: its text is trusted SQL
    return out


@functools.cache
def load_queries(package: str, filename: str = "queries.sql") -> dict[str, LiteralString]:
    """The named queries in ``filename`` shipped inside ``package`` (read once per process)."""
    return parse_queries((resources.files(package) / filename).read_text(encoding="utf-8"))
