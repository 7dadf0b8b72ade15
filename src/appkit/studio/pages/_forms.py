"""Reading query parameters and form fields for the pages: a bad value is a 400 page, never a 500."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from starlette.datastructures import FormData, QueryParams
from starlette.exceptions import HTTPException

MAX_TEXT = 10_000


def text(source: QueryParams | FormData, name: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str:
    """A trimmed string field ('' when absent); 400 when required and empty, too long or holding NUL."""
    value = source.get(name)
    if value is None or not isinstance(value, str):
        value = ""
    value = value.strip()
    if required and not value:
        raise HTTPException(400, f"{name} is required")
    if len(value) > max_len or "\x00" in value:
        raise HTTPException(400, f"{name} is too long or holds a NUL character")
    return value


def integer(source: QueryParams | FormData, name: str, *, default: int | None = None,
            lo: int = 1, hi: int = 2**63 - 1) -> int | None:
    """An integer in ``[lo, hi]`` or ``default`` when absent/empty; 400 otherwise."""
    raw = text(source, name, max_len=30)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"{name} must be between {lo} and {hi}")
    return value


def uuid(value: str, what: str) -> str:
    """``value`` as a canonical UUID string; 404 for anything else (it names no object)."""
    try:
        return str(UUID(value))
    except (ValueError, AttributeError):
        raise HTTPException(404, f"no {what} {value[:60]!r}") from None


def optional_uuid(source: QueryParams | FormData, name: str) -> str | None:
    raw = text(source, name, max_len=100)
    if not raw:
        return None
    try:
        return str(UUID(raw))
    except ValueError:
        raise HTTPException(400, f"{name} must be a UUID, got {raw[:60]!r}") from None


def when(source: QueryParams | FormData, name: str) -> datetime | None:
    """An ISO 8601 time (``2026-01-31`` or ``2026-01-31T12:00``, UTC when no offset) or None."""
    from datetime import UTC

    raw = text(source, name, max_len=40)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a date or time like 2026-01-31T12:00, got {raw[:40]!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def checkbox(source: QueryParams | FormData, name: str) -> bool:
    return text(source, name, max_len=10) in ("on", "true", "1", "yes")


def json_object(source: QueryParams | FormData, name: str, *, default: Any = None) -> Any:
    """A JSON value typed into a textarea (``default`` when empty); 400 when it does not parse."""
    import json

    raw = text(source, name, max_len=100_000)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"{name} is not valid JSON: {exc}") from None
