"""The Tables page's queries: a relation's catalog, keyset-paged/sorted/filtered reads and row writes, each
run as a chosen caller (admin, anon, a user, service role) the way PostgREST runs a request.

Every value crosses as text: cells are selected as ``col::text`` (Postgres' own text form, which round-trips
into the edit form) and written back as untyped parameters Postgres casts to the column's type. Identifiers
come from the catalog and are quoted with :mod:`psycopg.sql`; values are always parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from appkit import errors
from appkit.db.queries import load_queries

Conn = psycopg.AsyncConnection[Any]

#: query parameters of the grid that are not column filters
RESERVED = frozenset({"as", "order", "after", "before", "limit", "offset", "flash", "fcol", "fop", "fval"})
OPS: dict[str, str] = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
                       "like": "like", "ilike": "ilike", "is": "is", "in": "in"}
IS_VALUES = {"null": sql.SQL("is null"), "notnull": sql.SQL("is not null"), "true": sql.SQL("is true"),
             "false": sql.SQL("is false")}
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000
STATEMENT_TIMEOUT = "15s"
_INT_TYPES = frozenset({"int2", "int4", "int8", "oid"})


def _queries() -> dict[str, Any]:
    return load_queries("appkit.studio", "queries.sql")


class BadQuery(errors.ValidationError):
    """A grid parameter that cannot be used (unknown column, operator, cursor, limit)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    base_type: str
    category: str
    nullable: bool
    default: str | None
    identity: str
    generated: str
    enum_labels: list[str] | None
    pk_position: int | None

    @property
    def writable_on_insert(self) -> bool:
        return not self.generated and self.identity != "a"

    @property
    def writable_on_update(self) -> bool:
        return not self.generated and self.identity != "a" and self.pk_position is None

    @property
    def is_string(self) -> bool:
        return self.category == "S" and not self.enum_labels

    @property
    def input(self) -> dict[str, Any]:
        """How the row form asks for this column's value."""
        if self.enum_labels:
            return {"kind": "select", "options": self.enum_labels}
        if self.category == "B":
            return {"kind": "select", "options": ["true", "false"]}
        if self.category == "N":
            return {"kind": "number", "step": "1" if self.base_type in _INT_TYPES else "any"}
        if self.base_type == "date":
            return {"kind": "date"}
        if self.base_type in ("time", "timetz"):
            return {"kind": "text", "placeholder": "12:00:00"}
        if self.base_type in ("timestamp", "timestamptz"):
            return {"kind": "text", "placeholder": "2025-01-31 12:00:00" + ("+00" if self.base_type.endswith("tz")
                                                                           else "")}
        if self.base_type in ("json", "jsonb"):
            return {"kind": "textarea", "placeholder": "{}"}
        if self.base_type == "uuid":
            return {"kind": "text", "placeholder": "00000000-0000-0000-0000-000000000000",
                    "pattern": "[0-9a-fA-F-]{32,36}"}
        if self.category == "A":
            return {"kind": "text", "placeholder": "{a,b}"}
        if self.base_type == "text":
            return {"kind": "textarea", "placeholder": ""}
        return {"kind": "text", "placeholder": ""}


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    oid: int
    kind: str
    rls: bool
    estimate: int | None
    columns: list[Column]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def pk(self) -> list[Column]:
        return sorted((c for c in self.columns if c.pk_position is not None), key=lambda c: c.pk_position or 0)

    @property
    def editable(self) -> bool:
        """Rows can be edited and deleted by key: a table with a primary key."""
        return self.kind in ("r", "p") and bool(self.pk)

    @property
    def insertable(self) -> bool:
        return self.kind in ("r", "p")

    @property
    def keyset(self) -> bool:
        """Paged by key (primary key, else ``ctid``); views, and partitioned tables without a primary key
        (a ``ctid`` is unique only within one partition), page by offset."""
        return self.kind in ("r", "m") or (self.kind == "p" and bool(self.pk))

    def key_exprs(self) -> list[sql.Composable]:
        if self.pk:
            return [sql.Identifier(c.name) for c in self.pk]
        return [sql.SQL("ctid")]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise BadQuery(f"{self.schema}.{self.name} has no column {name!r}", code="unknown_column")


async def relation(conn: Conn, schema: str, name: str) -> Relation:
    """The relation ``schema.name`` with its columns; :class:`appkit.errors.NotFound` when there is none."""
    q = _queries()
    cur = await conn.execute(q["relation"], {"schema": schema, "name": name})
    row = await cur.fetchone()
    if row is None:
        raise errors.NotFound(f"no table or view {schema}.{name}", code="not_found")
    cur = await conn.execute(q["columns"], {"oid": row["oid"]})
    cols = [Column(name=r["name"], type=r["type"], base_type=r["base_type"], category=r["category"],
                   nullable=r["nullable"], default=r["default"], identity=r["identity"] or "",
                   generated=r["generated"] or "", enum_labels=r["enum_labels"], pk_position=r["pk_position"])
            for r in await cur.fetchall()]
    return Relation(schema, name, row["oid"], row["kind"], row["rls"], row["estimate"], cols)


async def list_tables(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(_queries()["list_tables"])
    return list(await cur.fetchall())


# -- callers ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    """Who the grid's queries run as: ``admin`` (the database connection's own role), or a PostgREST role
    with the JWT claims that role's requests carry."""

    param: str  # the ``as=`` value ("" for admin)
    role: str | None
    claims: str | None
    label: str

    @property
    def is_admin(self) -> bool:
        return self.role is None


ADMIN = Caller("", None, None, "admin (database owner, bypasses RLS)")


async def caller(conn: Conn, value: str | None) -> Caller:
    """The caller named by ``as=``: empty for admin, ``anon``, ``service_role``, ``authenticated`` (no user),
    or a user id (authenticated as that user, with the claims GoTrue would sign for them)."""
    value = (value or "").strip()
    if not value or value == "admin":
        return ADMIN
    if value == "anon":
        return Caller("anon", "anon", json.dumps({"role": "anon"}), "anon (no session)")
    if value == "service_role":
        return Caller("service_role", "service_role", json.dumps({"role": "service_role"}), "service role")
    try:
        user_id = uuid.UUID(value)
    except ValueError:
        raise BadQuery(f"as={value[:60]!r} is not anon, service_role or a user id", code="bad_caller") from None
    cur = await conn.execute(_queries()["user_claims"], {"id": user_id})
    row = await cur.fetchone()
    if row is None:
        raise errors.NotFound(f"no user {user_id}", code="user_not_found")
    claims = json.loads(row["claims"])
    role = claims.get("role") or "authenticated"
    if role not in ("authenticated", "anon", "service_role"):
        role = "authenticated"
    return Caller(str(user_id), role, row["claims"], f"{row['email'] or user_id} ({role})")


@asynccontextmanager
async def as_caller(conn: Conn, who: Caller, *, read_only: bool = False) -> AsyncIterator[Conn]:
    """A transaction on ``conn`` running as ``who`` (``set local role`` + ``request.jwt.claims``, as PostgREST)."""
    async with conn.transaction():
        await conn.execute("select set_config('statement_timeout', %s, true)", (STATEMENT_TIMEOUT,))
        if read_only:
            await conn.execute("set transaction read only")
        if who.role is not None:
            await conn.execute(
                "select set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', '', true),"
                " set_config('request.jwt.claim.role', '', true), set_config('request.method', %s, true),"
                " set_config('role', %s, true)",
                (who.claims, "GET" if read_only else "POST", who.role))
        yield conn


# -- reading ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str

    @property
    def param(self) -> tuple[str, str]:
        return self.column, f"{self.op}.{self.value}"


def parse_filters(rel: Relation, params: list[tuple[str, str]]) -> list[Filter]:
    """``column=op.value`` query parameters (PostgREST's syntax) as filters; anything else is :class:`BadQuery`."""
    out: list[Filter] = []
    for name, raw in params:
        if name in RESERVED:
            continue
        rel.column(name)
        op, sep, value = raw.partition(".")
        if not sep or op not in OPS:
            raise BadQuery(f"filter {name}={raw[:60]!r}: expected <op>.<value> with op one of {', '.join(OPS)}",
                           code="bad_filter")
        if op == "is" and value not in IS_VALUES:
            raise BadQuery(f"filter {name}=is.{value[:20]}: use is.null, is.notnull, is.true or is.false",
                           code="bad_filter")
        if op == "in" and not (value.startswith("(") and value.endswith(")")):
            raise BadQuery(f"filter {name}=in.{value[:40]}: expected in.(a,b,c)", code="bad_filter")
        out.append(Filter(name, op, value))
    return out


def _filter_sql(f: Filter) -> tuple[sql.Composable, list[Any]]:
    col = sql.Identifier(f.column)
    if f.op == "is":
        return sql.SQL("{} {}").format(col, IS_VALUES[f.value]), []
    if f.op == "in":
        items = [v.strip() for v in f.value[1:-1].split(",")] if f.value[1:-1].strip() else []
        return sql.SQL("{}::text = any(%s)").format(col), [items]
    if f.op in ("like", "ilike"):
        return sql.SQL("{}::text " + OPS[f.op] + " %s").format(col), [f.value.replace("*", "%")]
    return sql.SQL("{} " + OPS[f.op] + " %s").format(col), [f.value]


@dataclass(frozen=True)
class Order:
    column: str | None  # None: by key
    desc: bool = False

    @property
    def param(self) -> str:
        return "" if self.column is None else f"{self.column}.{'desc' if self.desc else 'asc'}"


def parse_order(rel: Relation, value: str | None) -> Order:
    if not value:
        return Order(None)
    name, _, direction = value.rpartition(".")
    if not name or direction not in ("asc", "desc"):
        name, direction = value, "asc"
    rel.column(name)
    return Order(name, direction == "desc")


def encode_cursor(values: list[str | None]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(value: str, size: int) -> list[str | None]:
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadQuery("invalid page cursor", code="bad_cursor") from None
    if not isinstance(data, list) or len(data) != size or not all(v is None or isinstance(v, str) for v in data):
        raise BadQuery("invalid page cursor", code="bad_cursor")
    return data


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadQuery(f"limit={value[:20]!r} is not a number", code="bad_limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be 1-{MAX_LIMIT}", code="bad_limit")
    return limit


def parse_offset(value: str | None) -> int:
    if not value:
        return 0
    try:
        offset = int(value)
    except ValueError:
        raise BadQuery(f"offset={value[:20]!r} is not a number", code="bad_offset") from None
    if not 0 <= offset <= MAX_OFFSET:
        raise BadQuery(f"offset must be 0-{MAX_OFFSET}", code="bad_offset")
    return offset


@dataclass
class GridPage:
    columns: list[Column]
    rows: list[list[str | None]]
    keys: list[str] = field(default_factory=list)  # each row's key (encoded) for its edit link
    next_cursor: str | None = None
    prev_cursor: str | None = None
    next_offset: int | None = None
    prev_offset: int | None = None


Direction = Literal["after", "before"]


def _keyset(rel: Relation, order: Order, cursor: list[str | None], direction: Direction
            ) -> tuple[sql.Composable, list[Any]]:
    """The WHERE part that continues after (or before) the row whose sort/key values are ``cursor``.

    Rows are ordered by ``sort <dir> NULLS LAST, key ASC``; ``cursor`` is ``[sort value, *key values]``
    (the sort value only when ordering by a column)."""
    keys = rel.key_exprs()
    key_row = sql.SQL("({})").format(sql.SQL(", ").join(keys))
    key_vals = cursor[1:] if order.column is not None else cursor
    key_params = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(keys)))
    forward = direction == "after"
    key_cmp = sql.SQL("{} {} {}").format(key_row, sql.SQL(">" if forward else "<"), key_params)
    if order.column is None:
        return key_cmp, list(key_vals)
    col = sql.Identifier(order.column)
    value = cursor[0]
    beyond = sql.SQL(">") if order.desc is False else sql.SQL("<")
    before = sql.SQL("<") if order.desc is False else sql.SQL(">")
    if forward:
        if value is None:
            return sql.SQL("({} is null and {})").format(col, key_cmp), list(key_vals)
        return (sql.SQL("({} {} %s or ({} = %s and {}) or {} is null)").format(col, beyond, col, key_cmp, col),
                [value, value, *key_vals])
    if value is None:
        return sql.SQL("({} is not null or {})").format(col, key_cmp), list(key_vals)
    return sql.SQL("({} {} %s or ({} = %s and {}))").format(col, before, col, key_cmp), [value, value, *key_vals]


async def fetch_page(conn: Conn, rel: Relation, *, filters: list[Filter], order: Order, limit: int,
                     after: str | None = None, before: str | None = None, offset: int = 0) -> GridPage:
    """One page of ``rel`` (run inside :func:`as_caller`)."""
    # aliased: ORDER BY "x" would otherwise sort by the output column "x"::text (SQL92 name resolution)
    cols = [sql.SQL("{}::text as {}").format(sql.Identifier(c.name), sql.Identifier(f"c{i}"))
            for i, c in enumerate(rel.columns)]
    where: list[sql.Composable] = []
    params: list[Any] = []
    for f in filters:
        clause, values = _filter_sql(f)
        where.append(clause)
        params.extend(values)
    page = GridPage(rel.columns, [])
    if not rel.keyset:  # a view: offset paging in the requested order
        order_by: list[sql.Composable] = []
        if order.column is not None:
            order_by.append(sql.SQL("{} {} nulls last").format(sql.Identifier(order.column),
                                                               sql.SQL("desc" if order.desc else "asc")))
        # then by every column: a stable order for offset paging (a view has no key)
        order_by.extend(sql.Identifier(c.name) for c in rel.columns if c.category not in ("C", "G", "U", "X"))
        query = sql.SQL("select {} from {} {} order by {} limit {} offset {}").format(
            sql.SQL(", ").join(cols), rel.ident, _where(where), sql.SQL(", ").join(order_by or [sql.SQL("(select 1)")]),
            sql.Literal(limit + 1), sql.Literal(offset))
        cur = conn.cursor(row_factory=tuple_row)
        await _run(cur, query, params)
        rows = [list(r) for r in await cur.fetchall()]
        page.rows = rows[:limit]
        page.next_offset = offset + limit if len(rows) > limit else None
        page.prev_offset = max(0, offset - limit) if offset > 0 else None
        return page
    keys = rel.key_exprs()
    extra: list[sql.Composable] = []
    if order.column is not None:
        extra.append(sql.SQL("{}::text as s0").format(sql.Identifier(order.column)))
    extra.extend(sql.SQL("{}::text as {}").format(k, sql.Identifier(f"k{i}")) for i, k in enumerate(keys))
    size = len(extra)
    direction: Direction = "before" if before else "after"
    cursor_text = before or after
    if cursor_text:
        clause, values = _keyset(rel, order, decode_cursor(cursor_text, size), direction)
        where.append(clause)
        params.extend(values)
    reverse = direction == "before"
    order_by = []
    if order.column is not None:
        col_desc = order.desc != reverse
        order_by.append(sql.SQL("{} {} {}").format(sql.Identifier(order.column), sql.SQL("desc" if col_desc else "asc"),
                                                   sql.SQL("nulls first" if reverse else "nulls last")))
    order_by.extend(sql.SQL("{} {}").format(k, sql.SQL("desc" if reverse else "asc")) for k in keys)
    # sort and limit the raw rows first, then turn only the page's rows into text (a cast in the sorted
    # query's select list would run for every row the sort reads: 100,000 for an unindexed sort column)
    raw = [sql.Identifier(c.name) for c in rel.columns] + ([] if rel.pk else [sql.SQL("ctid")])
    query = sql.SQL("select {} from (select {} from {} {} order by {} limit {}) as page order by {}").format(
        sql.SQL(", ").join([*cols, *extra]), sql.SQL(", ").join(raw), rel.ident, _where(where),
        sql.SQL(", ").join(order_by), sql.Literal(limit + 1), sql.SQL(", ").join(order_by))
    cur = conn.cursor(row_factory=tuple_row)
    await _run(cur, query, params)
    fetched = [list(r) for r in await cur.fetchall()]
    more = len(fetched) > limit
    fetched = fetched[:limit]
    if reverse:
        fetched.reverse()
    ncols = len(rel.columns)
    page.rows = [r[:ncols] for r in fetched]
    tails: list[list[str | None]] = [r[ncols:] for r in fetched]
    if rel.pk:
        page.keys = [encode_cursor(t[size - len(keys):]) for t in tails]
    if fetched:
        # forward: a next page when more rows followed; backward: the page we came from always follows
        if (more and not reverse) or reverse:
            page.next_cursor = encode_cursor(tails[-1])
        if (cursor_text and not reverse) or (reverse and more):
            page.prev_cursor = encode_cursor(tails[0])
    return page


async def _run(cur: psycopg.AsyncCursor[Any], query: sql.Composed, params: list[Any]) -> None:
    """Execute the grid's read; a filter or sort the column's type has no operator for is a bad query."""
    try:
        await cur.execute(query, params)
    except (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedObject) as exc:
        raise BadQuery(f"cannot filter or sort that way: {exc.diag.message_primary or exc}",
                       code="bad_filter") from None


def _where(clauses: list[sql.Composable]) -> sql.Composable:
    if not clauses:
        return sql.SQL("")
    return sql.SQL("where ") + sql.SQL(" and ").join(clauses)


# -- rows ---------------------------------------------------------------------------------------------

def _key_where(rel: Relation, key: str) -> tuple[sql.Composable, list[Any]]:
    if not rel.editable:
        raise BadQuery(f"{rel.schema}.{rel.name} has no primary key: its rows cannot be edited here",
                       code="not_editable")
    values = decode_cursor(key, len(rel.pk))
    if any(v is None for v in values):
        raise BadQuery("invalid row key", code="bad_key")
    clause = sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c in rel.pk)
    return clause, list(values)


async def get_row(conn: Conn, rel: Relation, key: str) -> list[str | None] | None:
    clause, params = _key_where(rel, key)
    cols = [sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in rel.columns]
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(sql.SQL("select {} from {} where {}").format(sql.SQL(", ").join(cols), rel.ident, clause),
                      params)
    row = await cur.fetchone()
    return None if row is None else list(row)


def form_values(rel: Relation, form: Mapping[str, Any], *, insert: bool) -> dict[str, str | None]:
    """The column values a row form sent: ``v:<col>`` fields (``null:<col>`` checked means NULL).

    On insert an empty field is left out (the column's default applies); on update an empty field of a
    non-text column is NULL. Generated and ``identity always`` columns (and the key, on update) are skipped."""
    out: dict[str, str | None] = {}
    for col in rel.columns:
        if not (col.writable_on_insert if insert else col.writable_on_update):
            continue
        raw = form.get(f"v:{col.name}")
        if form.get(f"null:{col.name}"):
            out[col.name] = None
            continue
        if raw is None or not isinstance(raw, str):
            continue
        if raw == "" and (insert or not col.is_string):
            if not insert:
                out[col.name] = None
            continue
        out[col.name] = raw
    return out


async def insert_row(conn: Conn, rel: Relation, values: dict[str, str | None], *, returning: bool = True
                     ) -> str | None:
    """Insert a row; its key (None for a table without one, or without ``returning``: a caller under RLS
    may not be allowed to read back what it may insert, and ``RETURNING`` would then fail the insert)."""
    if not rel.insertable:
        raise BadQuery(f"{rel.schema}.{rel.name} is a view: rows cannot be inserted here", code="not_insertable")
    returned = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in rel.pk)
    tail = sql.SQL(" returning {}").format(returned) if rel.pk and returning else sql.SQL("")
    if values:
        query = sql.SQL("insert into {} ({}) values ({})").format(
            rel.ident, sql.SQL(", ").join(sql.Identifier(n) for n in values),
            sql.SQL(", ").join(sql.Placeholder() * len(values))) + tail
    else:
        query = sql.SQL("insert into {} default values").format(rel.ident) + tail
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(query, list(values.values()))
    if not (rel.pk and returning):
        return None
    row = await cur.fetchone()
    return None if row is None else encode_cursor(list(row))


async def update_row(conn: Conn, rel: Relation, key: str, values: dict[str, str | None]) -> bool:
    """Update the row with ``key``; False when no row matched (gone, or RLS hides it from the caller)."""
    clause, params = _key_where(rel, key)
    if not values:
        return await get_row(conn, rel, key) is not None
    query = sql.SQL("update {} set {} where {}").format(
        rel.ident, sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in values), clause)
    cur = await conn.execute(query, [*values.values(), *params])
    return cur.rowcount > 0


async def delete_row(conn: Conn, rel: Relation, key: str) -> bool:
    clause, params = _key_where(rel, key)
    cur = await conn.execute(sql.SQL("delete from {} where {}").format(rel.ident, clause), params)
    return cur.rowcount > 0
