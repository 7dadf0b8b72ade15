"""Adds a schema to ``[api] schemas`` of a Supabase CLI config.toml, editing its text minimally.

Only the ``schemas`` array (or, when missing, one new line or section) changes; comments,
ordering and formatting elsewhere are kept. The result is re-parsed to prove it.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from appkit.errors import ConfigError

#: The Supabase CLI's default ``[api] schemas``.
DEFAULT_SCHEMAS = ("public", "graphql_public")

_HEADER_RE = re.compile(r"^[ \t]*\[\[?[ \t]*([^\]]+?)[ \t]*\]\]?[ \t]*(#.*)?$", re.M)
_SCHEMAS_RE = re.compile(r"^[ \t]*schemas[ \t]*=[ \t]*", re.M)


def api_schemas(text: str) -> list[str] | None:
    """``[api] schemas`` of a config.toml's text (None when unset)."""
    data = _parse(text)
    api = data.get("api")
    if not isinstance(api, dict) or "schemas" not in api:
        return None
    value = api["schemas"]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError("[api] schemas must be an array of strings")
    return list(value)


def add_api_schema(text: str, schema: str) -> str:
    """``text`` with ``schema`` in ``[api] schemas`` (unchanged if it is already there)."""
    current = api_schemas(text)
    if current is not None and schema in current:
        return text
    quoted = _quote(schema)
    section = _api_section(text)
    if section is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = f'{text}{sep}\n[api]\nschemas = [{", ".join(_quote(s) for s in (*DEFAULT_SCHEMAS, schema))}]\n'
    else:
        start, end = section
        m = _SCHEMAS_RE.search(text, start, end)
        if m is None:
            line_end = text.index("\n", start) + 1 if "\n" in text[start:] else len(text)
            line = f'schemas = [{", ".join(_quote(s) for s in (*DEFAULT_SCHEMAS, schema))}]\n'
            prefix = "" if text[:line_end].endswith("\n") else "\n"
            new = text[:line_end] + prefix + line + text[line_end:]
        else:
            if text[m.end():m.end() + 1] != "[":
                raise ConfigError("[api] schemas in config.toml is not an inline array; add the schema by hand")
            at, trailing_comma = _array_insert_point(text, m.end())
            new = text[:at] + (f" {quoted}," if trailing_comma else
                               (quoted if text[at - 1] == "[" else f", {quoted}")) + text[at:]
    after = api_schemas(new)
    before = _parse(text)
    if after is None or schema not in after or _without_schemas(_parse(new)) != _without_schemas(before):
        raise ConfigError("could not add the schema to [api] schemas of config.toml; add it by hand")
    return new


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config.toml is not valid TOML: {exc}") from None


def _without_schemas(data: dict[str, Any]) -> dict[str, Any]:
    api = data.get("api")
    if isinstance(api, dict):
        rest = {k: v for k, v in api.items() if k != "schemas"}
        data = {k: v for k, v in data.items() if k != "api"} | ({"api": rest} if rest else {})
    return data


def _api_section(text: str) -> tuple[int, int] | None:
    """(start of the ``[api]`` header line, start of the next header) or None."""
    headers = list(_HEADER_RE.finditer(text))
    for i, h in enumerate(headers):
        if h.group(1).strip() == "api" and not h.group(0).lstrip().startswith("[["):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            return h.start(), end
    return None


def _array_insert_point(text: str, open_at: int) -> tuple[int, bool]:
    """Where a new last element of the array opening at ``open_at`` goes, and whether the
    array's last element already has a trailing comma."""
    depth = 0
    i = open_at
    last_significant = open_at
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = None
                last_significant = i
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        elif ch == "[":
            depth += 1
            last_significant = i
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return last_significant + 1, text[last_significant] == "," and last_significant != open_at
            last_significant = i
        elif not ch.isspace():
            last_significant = i
        i += 1
    raise ConfigError("config.toml: unterminated [api] schemas array")
