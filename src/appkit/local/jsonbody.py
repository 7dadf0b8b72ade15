"""Parse untrusted JSON request bodies without letting hostile input become a 500.

``json.loads`` alone fails three ways the services must answer with a 400: nesting deep
enough to raise ``RecursionError`` (``'[' * 100000``), invalid UTF-8, and a ``\\ud800``
escape that decodes to a lone surrogate -- a ``str`` that later cannot be encoded (not
for Postgres, not even for the error message). :func:`loads` turns each into
:class:`BadJson`; nesting is bounded by :data:`MAX_DEPTH` before parsing, so a deep body
costs a linear scan, not a stack overflow. :func:`has_nul` finds NUL characters, which
Postgres cannot store in ``text`` and which the services refuse where they reach it.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: deepest nesting of arrays/objects accepted (PostgREST and GoTrue accept far less than
#: Python's recursion limit; real payloads stay in single digits)
MAX_DEPTH = 512

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BRACKETS = re.compile(rb'[\[\]{}"\\]')


class BadJson(ValueError):
    """The body is not JSON a service can use; ``str()`` says why (safe to echo)."""


def _depth(data: bytes) -> int:
    """The deepest array/object nesting in ``data`` (brackets inside strings not counted);
    a body with few brackets is not scanned at all."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    in_string = False
    skip = -1
    for m in _BRACKETS.finditer(data):
        pos = m.start()
        ch = data[pos]
        if in_string:
            if pos == skip:
                continue
            if ch == 0x5C:  # backslash: the next byte is escaped
                skip = pos + 1
            elif ch == 0x22:
                in_string = False
            continue
        if ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def loads(data: bytes | str) -> Any:
    """``json.loads`` for request bodies; raises :class:`BadJson` instead of anything else."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _depth(raw) > MAX_DEPTH:
        raise BadJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        raise BadJson("body is not valid UTF-8") from None
    except RecursionError:  # pragma: no cover - _depth bounds nesting first
        raise BadJson("JSON nested too deeply") from None
    except ValueError as exc:
        raise BadJson(str(exc)) from None
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(value):
        raise BadJson("JSON string holds an unpaired surrogate escape")
    return value


def has_nul(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
