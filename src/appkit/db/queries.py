"""Named SQL queries from ``.sql`` files: ``-- name: x`` blocks loaded once into a dict.

A block starts with ``-- name: <identifier>`` and a one-line ``--`` description, and runs to
the next ``-- name:`` line. Python refers to queries by name, so SQL is reviewed as SQL.
A block's comment lines and its trailing semicolon are dropped, so a query can be embedded.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import LiteralString

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """The named blocks of ``text`` (the header before the first block is ignored)."""
    out: dict[str, LiteralString] = {}
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        name = mark.group(1)
        if name in out:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [ln for ln in text[mark.end():end].strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip().rstrip(";")  # the file is part of the package: trusted SQL
    return out


@functools.cache
def load_queries(package: str, filename: str) -> dict[str, LiteralString]:
    """The named queries in ``filename`` shipped inside ``package`` (read once per process)."""
    return parse_queries((resources.files(package) / filename).read_text(encoding="utf-8"))
