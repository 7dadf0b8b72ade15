"""Named SQL queries loaded from a package's ``.sql`` file (``-- name: x`` blocks), once."""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import LiteralString

from appkit.errors import ConfigError

_NAME_RE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.M)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for each ``-- name: <name>`` block; the block's other ``--`` lines are its
    description and stay in the SQL (Postgres ignores them)."""
    queries: dict[str, LiteralString] = {}
    marks = list(_NAME_RE.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end():end].strip()
        if m.group(1) in queries:
            raise ConfigError(f"query {m.group(1)!r} is defined twice")
        if not body:
            raise ConfigError(f"query {m.group(1)!r} is empty")
        queries[m.group(1)] = body  # LiteralString: the text comes from our own file
    return queries


@functools.cache
def load_queries(package: str, filename: str = "queries.sql") -> dict[str, LiteralString]:
    """The named queries of ``package``'s ``filename`` (read once per process)."""
    return parse_queries(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
