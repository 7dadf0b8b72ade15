"""Split a SQL file into statements the way the Supabase CLI does.

The CLI stores each migration's statements in ``supabase_migrations.schema_migrations``;
splitting identically is what lets both tools agree on what was applied. A ``;`` ends a
statement unless it is inside a string (``'...'``, ``"..."``), a dollar-quoted body
(``$tag$...$tag$``), a comment (``--`` or nested ``/* */``), parentheses, or a
``BEGIN ATOMIC ... END`` function body. Each statement keeps its comments; only the
trailing ``;`` and surrounding white space are trimmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG_RE = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_ATOMIC_RE = re.compile(r"\bbegin\s+atomic\b", re.IGNORECASE)
_END_RE = re.compile(r"\bend\b", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    text: str
    #: 1-based line in the source file where the statement's text starts
    line: int


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """``i`` is just past the opening quote; return the index just past the closing one."""
    n = len(sql)
    while i < n:
        j = sql.find(quote, i)
        if j < 0:
            return n
        if j + 1 < n and sql[j + 1] == quote:
            i = j + 2
            continue
        return j + 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    """``i`` is just past ``/*``; comments nest as in PostgreSQL."""
    depth, n = 1, len(sql)
    while i < n and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _scan(sql: str, i: int, *, stop_at_paren: bool = False, stop_at_end: bool = False) -> int:
    """Scan from ``i``; return the index of the terminating ``;`` (or ``)``/END), or len(sql)."""
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            i = _skip_quoted(sql, i + 1, c)
        elif c == "$":
            m = _TAG_RE.match(sql, i)
            if m and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                close = sql.find(m.group(0), m.end())
                i = n if close < 0 else close + len(m.group(0))
            else:
                i += 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i + 2)
        elif c == "\\":
            i += 2
        elif c == "(":
            i = _scan(sql, i + 1, stop_at_paren=True) + 1
        elif (c == ")" and stop_at_paren) or (c == ";" and not (stop_at_paren or stop_at_end)):
            return i
        elif c in "bB" and not stop_at_paren:
            m = _ATOMIC_RE.match(sql, i)
            if m and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                i = _scan(sql, m.end(), stop_at_end=True)
            else:
                i += 1
        elif c in "eE" and stop_at_end:
            m = _END_RE.match(sql, i)
            if m and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                return m.end()
            i += 1
        else:
            i += 1
    return n


def split_statements(sql: str) -> list[Statement]:
    """Split ``sql`` into statements, trimmed, empty ones dropped."""
    out: list[Statement] = []
    start, n = 0, len(sql)
    while start < n:
        end = _scan(sql, start)
        raw = sql[start:end]
        text = raw.strip()
        if text:
            lead = len(raw) - len(raw.lstrip())
            line = sql.count("\n", 0, start + lead) + 1
            out.append(Statement(text=text, line=line))
        start = end + 1
    return out
