"""Typed table service: rows in and out as the table's ``Model``.

Filters, ordering and column selection go through the model (``col(Note.body).eq("x")``);
``raw()`` hands out the official postgrest builder for anything else, and ``execute()``
runs such a builder through the same error boundary and parses rows as the model.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic

from postgrest import AsyncRequestBuilder, AsyncSelectRequestBuilder
from postgrest.types import CountMethod, ReturnMethod

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit._query import Page, apply_filters, apply_order, decode_cursor, encode_cursor, normalize_order
from appkit._resilience import IDEMPOTENT_HEADER
from appkit.model import Col, Filter, M, Order, column_names, dump_row, encode_value, parse_rows


class AsyncTable(Generic[M]):
    """CRUD, bulk and keyset-paginated reads on the table bound to ``model``."""

    def __init__(self, scope: AsyncScope, model: type[M]) -> None:
        self._scope = scope
        self.model = model
        self.name = model.table_name()
        self.schema = model.__schema__

    def __repr__(self) -> str:
        return f"<AsyncTable {self.schema}.{self.name} as {self._scope.role}>"

    async def raw(self) -> AsyncRequestBuilder:
        """The official postgrest builder for this table, scoped to this client's caller."""
        client = await self._scope.rest(self.schema)
        return client.from_(self.name)

    async def execute(self, builder: Any) -> builtins.list[M]:
        """Run a raw builder (from ``raw()``) through appkit's error mapping; rows as the model."""
        with boundary():
            response = await builder.execute()
        data = response.data if response is not None else []
        return parse_rows(self.model, data if isinstance(data, list) else [data])

    # reads -------------------------------------------------------------------
    async def get(self, pk: Any) -> M:
        """The row with this primary key; ``errors.NotFound`` if missing or hidden by RLS."""
        pk_col = self.model.pk_column()
        builder = (await self.raw()).select("*").eq(pk_col.name, encode_value(pk_col.validate(pk))).limit(1)
        rows = await self._run(builder)
        if not rows:
            raise errors.NotFound(
                f"{self.name}: no row with {pk_col.name}={pk!r} (missing or not visible to this caller)",
                code="PGRST116", status=404,
            )
        return rows[0]

    async def find(self, *filters: Filter) -> M | None:
        """The first row matching ``filters`` (by primary key order), or None."""
        rows = await self.list(*filters, limit=1, order_by=self.model.pk_column().asc())
        return rows[0] if rows else None

    async def list(
        self,
        *filters: Filter,
        order_by: Order | Col[Any] | Sequence[Order | Col[Any]] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        columns: Sequence[Col[Any]] | None = None,
    ) -> builtins.list[M]:
        """Rows matching every filter (``[]`` when none). ``columns`` selects a subset of fields."""
        if limit is not None and limit < 0:
            raise errors.ValidationError("limit must be >= 0", code="invalid_limit")
        if offset is not None and offset < 0:
            raise errors.ValidationError("offset must be >= 0", code="invalid_offset")
        builder = (await self.raw()).select(column_names(columns))
        apply_filters(builder, filters)
        apply_order(builder, normalize_order(order_by))
        if limit is not None:
            builder = builder.limit(limit)
        if offset is not None:
            builder = builder.offset(offset)
        return await self._run(builder, partial=bool(columns))

    async def count(self, *filters: Filter) -> int:
        """How many rows match (exact count, no rows transferred)."""
        builder = (await self.raw()).select("*", count=CountMethod.exact, head=True)
        apply_filters(builder, filters)
        with boundary():
            response = await builder.execute()
        return int(response.count or 0)

    async def page(
        self,
        *filters: Filter,
        limit: int = 50,
        after: str | None = None,
        order_by: Order | Col[Any] | None = None,
    ) -> Page[M]:
        """One page of a keyset pagination, stable under concurrent inserts.

        Rows are ordered by ``order_by`` (default: the primary key) with the primary key as
        tie-breaker; ``after`` is the ``next_cursor`` of the previous page. The ordering
        column must be non-null.
        """
        if limit < 1:
            raise errors.ValidationError("limit must be >= 1", code="invalid_limit")
        pk = self.model.pk_column()
        orders = normalize_order(order_by) or [pk.asc()]
        key = orders[0]
        if len(orders) > 1:
            raise errors.ValidationError("page() orders by one column (plus the primary key)", code="invalid_order")
        keys = [key] if key.column.name == pk.name else [key, Order(pk, desc=key.desc)]
        builder = (await self.raw()).select("*")
        apply_filters(builder, filters)
        if after is not None:
            values = decode_cursor(after, len(keys))
            apply_filters(builder, [_after_filter(keys, values)])
        apply_order(builder, keys)
        builder = builder.limit(limit + 1)
        rows = await self._run(builder)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = None
        if more and rows:
            last = rows[-1].model_dump(mode="json", by_alias=True)
            cursor = encode_cursor([last[o.column.name] for o in keys])
        return Page(items=rows, next_cursor=cursor)

    # writes ------------------------------------------------------------------
    async def insert(self, row: M | Mapping[str, Any]) -> M:
        """Insert one row; returns it with server defaults (ids, timestamps, owner) filled in."""
        builder = (await self.raw()).insert(self._dump(row), returning=ReturnMethod.representation)
        rows = await self._run(builder)
        if not rows:
            raise errors.PermissionDenied(f"{self.name}: the inserted row is not visible to this caller",
                                          code="42501")
        return rows[0]

    async def insert_many(self, rows: Iterable[M | Mapping[str, Any]], *, chunk_size: int = 500) -> builtins.list[M]:
        """Insert rows in chunks (one request, one transaction per chunk); returns them as stored."""
        out: builtins.list[M] = []
        for chunk in _chunks((self._dump(r) for r in rows), chunk_size):
            builder = (await self.raw()).insert(chunk, returning=ReturnMethod.representation,
                                                default_to_null=False)
            out.extend(await self._run(builder))
        return out

    async def update(self, pk: Any, /, **changes: Any) -> M:
        """Change fields of the row with this primary key; returns the updated row.

        Unknown field names and ill-typed values raise ``errors.ValidationError`` before any
        request; a missing or RLS-hidden row raises ``errors.NotFound``.
        """
        pk_col = self.model.pk_column()
        payload = self._changes(changes)
        builder = (await self.raw()).update(payload, returning=ReturnMethod.representation)
        builder = builder.eq(pk_col.name, encode_value(pk_col.validate(pk)))
        rows = await self._run(builder)
        if not rows:
            raise errors.NotFound(f"{self.name}: no row with {pk_col.name}={pk!r} to update (missing or not "
                                  "visible to this caller)", code="PGRST116", status=404)
        return rows[0]

    async def update_where(self, *filters: Filter, values: Mapping[str, Any]) -> builtins.list[M]:
        """Update every row matching the filters (at least one filter is required)."""
        if not filters:
            raise errors.ValidationError("update_where needs at least one filter", code="filter_required")
        builder = (await self.raw()).update(self._changes(dict(values)), returning=ReturnMethod.representation)
        apply_filters(builder, filters)
        return await self._run(builder)

    async def delete(self, pk: Any) -> M:
        """Delete the row with this primary key and return it; ``errors.NotFound`` if none."""
        pk_col = self.model.pk_column()
        builder = (await self.raw()).delete(returning=ReturnMethod.representation)
        builder = builder.eq(pk_col.name, encode_value(pk_col.validate(pk)))
        rows = await self._run(builder)
        if not rows:
            raise errors.NotFound(f"{self.name}: no row with {pk_col.name}={pk!r} to delete (missing or not "
                                  "visible to this caller)", code="PGRST116", status=404)
        return rows[0]

    async def delete_where(self, *filters: Filter) -> int:
        """Delete every row matching the filters (at least one is required); returns how many."""
        if not filters:
            raise errors.ValidationError("delete_where needs at least one filter", code="filter_required")
        builder = (await self.raw()).delete(count=CountMethod.exact, returning=ReturnMethod.minimal)
        apply_filters(builder, filters)
        with boundary():
            response = await builder.execute()
        return int(response.count or 0)

    async def upsert(self, row: M | Mapping[str, Any], *, on_conflict: Sequence[Col[Any]] | None = None) -> M:
        """Insert or update (on the primary key, or ``on_conflict`` columns); returns the stored row."""
        builder = (await self.raw()).upsert(
            self._dump(row), returning=ReturnMethod.representation, on_conflict=_conflict(on_conflict),
            default_to_null=False,
        )
        rows = await self._run(builder)
        if not rows:
            raise errors.PermissionDenied(f"{self.name}: the upserted row is not visible to this caller",
                                          code="42501")
        return rows[0]

    async def upsert_many(
        self,
        rows: Iterable[M | Mapping[str, Any]],
        *,
        chunk_size: int = 500,
        on_conflict: Sequence[Col[Any]] | None = None,
        ignore_duplicates: bool = False,
    ) -> int:
        """Upsert many rows, ``chunk_size`` per request (each chunk is one transaction).

        Rows are streamed from the iterable, so memory stays bounded by one chunk. Returns
        the number of rows sent. Chunks are idempotent, so a chunk that fails on a
        transient error (connection, 502/503/504) is retried; chunks already written stay.
        """
        if chunk_size < 1:
            raise errors.ValidationError("chunk_size must be >= 1", code="invalid_chunk_size")
        total = 0
        conflict = _conflict(on_conflict)
        for chunk in _chunks((self._dump(r) for r in rows), chunk_size):
            builder = (await self.raw()).upsert(
                chunk, returning=ReturnMethod.minimal, on_conflict=conflict,
                ignore_duplicates=ignore_duplicates, default_to_null=False,
            )
            builder.request.headers[IDEMPOTENT_HEADER] = "1"
            with boundary():
                await builder.execute()
            total += len(chunk)
        return total

    # helpers -----------------------------------------------------------------
    async def _run(self, builder: AsyncSelectRequestBuilder | Any, *, partial: bool = False) -> builtins.list[M]:
        with boundary():
            response = await builder.execute()
        return parse_rows(self.model, response.data, partial=partial)

    def _dump(self, row: M | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(row, self.model):
            return dump_row(row)
        if isinstance(row, Mapping):
            return dump_row(self._changes(dict(row)))
        raise errors.ValidationError(
            f"expected a {self.model.__name__} or a mapping, got {type(row).__name__}", code="invalid_row"
        )

    def _changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        if not changes:
            raise errors.ValidationError("nothing to change", code="empty_update")
        columns = self.model.__columns__
        out: dict[str, Any] = {}
        for name, value in changes.items():
            column = columns.get(name)
            if column is None:
                raise errors.ValidationError(f"{self.model.__name__} has no field {name!r}", code="unknown_field")
            out[column.name] = encode_value(column.validate(value))
        return out


def _conflict(columns: Sequence[Col[Any]] | None) -> str:
    return ",".join(c.name for c in columns) if columns else ""


def _after_filter(keys: builtins.list[Order], values: builtins.list[Any]) -> Filter:
    """Rows strictly after ``values`` in the (key, pk) ordering."""
    first, first_value = keys[0], values[0]
    op = "lt" if first.desc else "gt"
    strictly = Filter(first.column, op, first_value)
    if len(keys) == 1:
        return strictly
    second, second_value = keys[1], values[1]
    tie = Filter(first.column, "eq", first_value) & Filter(second.column, "lt" if second.desc else "gt",
                                                             second_value)
    return strictly | tie


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterable[builtins.list[dict[str, Any]]]:
    chunk: builtins.list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


__all__ = ["AsyncTable", "Page"]
