"""Turning typed filters/orderings into PostgREST query parameters; keyset cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from appkit import errors
from appkit.model import Col, Filter, M, Order


@dataclass
class Page(Generic[M]):
    """One page of rows; pass ``next_cursor`` as ``after=`` for the next (None on the last page)."""

    items: list[M] = field(default_factory=list)
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def apply_filters(builder: Any, filters: Iterable[Filter]) -> None:
    """Add each filter to a postgrest builder's query string (AND-ed, as PostgREST does)."""
    for f in filters:
        if not isinstance(f, Filter):
            raise errors.ValidationError(
                f"filters must be built from columns, e.g. col(Note.body).eq('x'); got {type(f).__name__}",
                code="invalid_filter",
            )
        prefix = "not." if f.negate else ""
        if f.column is None:
            key = f"{prefix}{f.op}"
            value = "(" + ",".join(c.render() for c in f.children) + ")"
        else:
            key = f.column.name
            value = f"{prefix}{f.op}.{f.render_value()}"
        builder.request.params = builder.request.params.add(key, value)


def normalize_order(order_by: Order | Col[Any] | Sequence[Order | Col[Any]] | None) -> list[Order]:
    if order_by is None:
        return []
    items: Sequence[Order | Col[Any]] = [order_by] if isinstance(order_by, (Order, Col)) else order_by
    out: list[Order] = []
    for item in items:
        if isinstance(item, Col):
            out.append(item.asc())
        elif isinstance(item, Order):
            out.append(item)
        else:
            raise errors.ValidationError("order_by takes col(Model.field) or col(Model.field).desc()",
                                         code="invalid_order")
    return out


def apply_order(builder: Any, orders: Sequence[Order]) -> None:
    if not orders:
        return
    parts = []
    for o in orders:
        part = f"{o.column.name}.{'desc' if o.desc else 'asc'}"
        if o.nulls is not None:
            part += ".nullsfirst" if o.nulls == "first" else ".nullslast"
        parts.append(part)
    builder.request.params = builder.request.params.set("order", ",".join(parts))


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.ValidationError("malformed page cursor", code="invalid_cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise errors.ValidationError("page cursor does not match this ordering", code="invalid_cursor")
    return values
