"""The worker's SQL: ``queries.sql`` split into named blocks, loaded once into ``QUERIES``."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for every ``-- name: X`` block (its comment lines dropped)."""
    found: dict[str, LiteralString] = {}
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = "\n".join(line for line in text[mark.end():end].splitlines()
                         if line.strip() and not line.lstrip().startswith("--")).strip()
        found[mark.group(1)] = body.rstrip(";")  # mypy treats LiteralString as str
    return found


QUERIES: dict[str, LiteralString] = parse((resources.files("appkit.jobs") / "queries.sql").read_text("utf-8"))
