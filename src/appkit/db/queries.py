"""Named SQL queries loaded from ``.sql`` files (``-- name: NAME`` starts each block)."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.M)


def load_queries(package: str, filename: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for every ``-- name:`` block of ``package/filename``."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries
