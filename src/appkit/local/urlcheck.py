"""Refuse request URLs the database cannot take, before a service looks at them.

A percent-escape can put a NUL character into a path or query value (``/bucket/x%00``,
``?filter=%00``), which Postgres ``text`` cannot hold, or bytes that are not UTF-8
(``%ff``), which the ASGI server silently turns into U+FFFD -- a different name than the
client sent. :func:`url_problem` names either, so the service answers 400 in its own shape.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import Scope


def url_problem(scope: Scope) -> str | None:
    """Why the request's path or query string is unusable, or None."""
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    query: bytes = scope.get("query_string", b"")
    for part, what in ((raw_path, "path"), (query.replace(b"+", b" "), "query string")):
        if b"%" not in part and b"\x00" not in part:
            continue
        decoded = unquote_to_bytes(part)
        if b"\x00" in decoded:
            return f"the {what} must not contain NUL characters"
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return f"the {what} is not valid UTF-8 once percent-decoded"
    return None
