"""Audit-log values: an entry, the filters of a listing, and their validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from appkit import errors
from appkit._uuid import parse_uuid

MAX_LIMIT = 1000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class AuditEntry(BaseModel):
    """One audited change: who (``actor``, ``role``), what (``action`` on ``table_schema.table_name``,
    row ``pk``, ``old``/``new`` values — only the changed columns for an UPDATE), ``org_id`` when
    the row has one, the request's ``request_id`` and client ``ip`` when known, and when (``at``)."""

    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor: UUID | None
    role: str | None
    action: str
    table_schema: str
    table_name: str
    pk: dict[str, Any] | None
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    org_id: UUID | None
    request_id: str | None
    ip: str | None
    txid: int

    @property
    def table(self) -> str:
        return f"{self.table_schema}.{self.table_name}"


@dataclass(frozen=True)
class AuditFilter:
    """Validated listing filters (``None`` = not filtered)."""

    org: UUID | None = None
    table_schema: str | None = None
    table_name: str | None = None
    actor: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


def _uuid(value: object, what: str) -> UUID | None:
    if value is None:
        return None
    parsed = parse_uuid(value)
    if parsed is None:
        raise errors.ValidationError(f"{what} must be a UUID, not {value!r}"[:200], code="invalid_filter")
    return parsed


def _time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        raise errors.ValidationError(f"{what} must be a datetime (e.g. now - timedelta), not a timedelta",
                                     code="invalid_filter")
    if not isinstance(value, datetime):
        raise errors.ValidationError(f"{what} must be a datetime", code="invalid_filter")
    if value.tzinfo is None or value.utcoffset() is None:
        raise errors.ValidationError(f"{what} must be timezone-aware (e.g. datetime.now(UTC))", code="invalid_filter")
    return value


def split_table(table: object) -> tuple[str, str]:
    """``"public.notes"`` or ``"notes"`` (schema public) -> ``(schema, name)``."""
    if not isinstance(table, str):
        raise errors.ValidationError("table must be a string like 'public.notes'", code="invalid_filter")
    parts = table.split(".")
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise errors.ValidationError(f"table must be 'schema.name' with plain identifiers, not {table!r}"[:200],
                                     code="invalid_filter")
    return parts[0], parts[1]


def audit_filter(*, org: object = None, table: object = None, actor: object = None, since: object = None,
                 until: object = None, limit: object = 100) -> AuditFilter:
    """Check the filters of ``list``; ``errors.ValidationError`` on any malformed one."""
    schema, name = split_table(table) if table is not None else (None, None)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise errors.ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}", code="invalid_filter")
    f = AuditFilter(_uuid(org, "org"), schema, name, _uuid(actor, "actor"), _time(since, "since"),
                    _time(until, "until"), limit)
    if f.since is not None and f.until is not None and f.since > f.until:
        raise errors.ValidationError("since is after until", code="invalid_filter")
    return f


def check_older_than(older_than: object) -> timedelta:
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise errors.ValidationError("older_than must be a non-negative timedelta", code="invalid_retention")
    return older_than
