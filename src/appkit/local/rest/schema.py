"""The schema cache: tables, views, columns, keys, relationships and functions of the
exposed schemas, read from pg_catalog once and reloaded on ``NOTIFY pgrst, 'reload schema'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from appkit.local.tasks import cancel_and_wait

log = logging.getLogger("appkit.local.rest")


@dataclass
class Column:
    name: str
    type: str  # format_type(), e.g. "integer", "character varying(20)", "text[]"
    type_name: str  # pg_type.typname, e.g. "int4", "_text"
    category: str  # pg_type.typcategory: N numeric, S string, B bool, A array, D date/time, U user...
    nullable: bool
    default: str | None
    generated: bool
    position: int
    enum: list[str] | None = None
    description: str | None = None


@dataclass
class Relationship:
    """A foreign-key path from ``table`` to ``target`` (possibly through a junction)."""

    table: tuple[str, str]
    target: tuple[str, str]
    constraint: str
    columns: list[str]  # on ``table`` (or, for m2m, the junction's columns pointing at ``table``)
    target_columns: list[str]
    cardinality: str  # "m2o", "o2m", "o2o", "m2m"
    junction: tuple[str, str] | None = None
    junction_columns: list[str] = field(default_factory=list)  # junction cols pointing at table
    junction_target_columns: list[str] = field(default_factory=list)  # junction cols pointing at target
    junction_constraint2: str = ""
    self_columns: list[str] = field(default_factory=list)  # table's columns referenced by the junction
    target_key_columns: list[str] = field(default_factory=list)  # target's columns referenced by junction


@dataclass
class Table:
    schema: str
    name: str
    kind: str  # r, v, m, f, p
    columns: dict[str, Column]
    pk: list[str]
    insertable: bool
    updatable: bool
    deletable: bool
    description: str | None = None
    uniques: list[list[str]] = field(default_factory=list)

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")


@dataclass
class FuncArg:
    name: str
    type: str
    type_name: str
    has_default: bool
    variadic: bool = False


@dataclass
class Function:
    schema: str
    name: str
    oid: int
    args: list[FuncArg]
    return_type: str
    return_type_name: str
    returns_set: bool
    return_kind: str  # "scalar", "composite", "void", "record"
    return_table: tuple[str, str] | None  # when composite of a known table/view
    return_columns: list[tuple[str, str]]  # out columns for "returns table(...)"
    volatility: str  # i, s, v
    description: str | None = None

    @property
    def single_unnamed_json(self) -> bool:
        return (
            len(self.args) == 1
            and self.args[0].name == ""
            and self.args[0].type_name in ("json", "jsonb", "text", "xml", "bytea")
        )


TABLES_SQL = """
select n.nspname, c.relname, c.relkind, c.oid,
       obj_description(c.oid, 'pg_class'),
       case when c.relkind in ('r', 'p') then true
            else (pg_relation_is_updatable(c.oid::regclass, true) & 8) = 8 end,
       case when c.relkind in ('r', 'p') then true
            else (pg_relation_is_updatable(c.oid::regclass, true) & 4) = 4 end,
       case when c.relkind in ('r', 'p') then true
            else (pg_relation_is_updatable(c.oid::regclass, true) & 16) = 16 end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
"""

COLUMNS_SQL = """
select c.oid, a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory,
       not a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '', a.attnum,
       case when t.typtype = 'e' then
         (select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid)
       end,
       col_description(c.oid, a.attnum)
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'f', 'p')
  and a.attnum > 0 and not a.attisdropped
order by c.oid, a.attnum
"""

CONSTRAINTS_SQL = """
select con.contype, con.conname, con.conrelid, con.confrelid,
       (select array_agg(a.attname order by k.i) from unnest(con.conkey) with ordinality k(n, i)
          join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n),
       (select array_agg(a.attname order by k.i) from unnest(con.confkey) with ordinality k(n, i)
          join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n)
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
where con.contype in ('p', 'u', 'f') and n.nspname = any(%(schemas)s)
"""

# unique indexes also make a relationship one-to-one
UNIQUE_INDEX_SQL = """
select i.indrelid,
       (select array_agg(a.attname order by k.i) from unnest(i.indkey) with ordinality k(n, i)
          join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n)
from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
where i.indisunique and i.indpred is null and i.indexprs is null and n.nspname = any(%(schemas)s)
"""

FUNCTIONS_SQL = """
select n.nspname, p.proname, p.oid,
       coalesce(p.proargnames, '{}'::text[]), coalesce(p.proargmodes::text[], '{}'::text[]),
       coalesce(p.proallargtypes, p.proargtypes::oid[]),
       p.pronargdefaults, p.pronargs, p.prorettype, format_type(p.prorettype, null), rt.typname, rt.typtype,
       rt.typrelid, p.proretset, p.provolatile, obj_description(p.oid, 'pg_proc'), p.provariadic <> 0
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
where n.nspname = any(%(schemas)s) and p.prokind = 'f'
"""

#: the attributes of composite types functions return that are not exposed tables' row types
#: (``create type ... as (...)``, or a table of another schema)
COMPOSITE_COLUMNS_SQL = """
select a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod)
from pg_attribute a where a.attrelid = any(%(oids)s) and a.attnum > 0 and not a.attisdropped
order by a.attrelid, a.attnum
"""

ROLE_SETTINGS_SQL = """
select r.rolname, s.setconfig from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
order by s.setdatabase
"""

VIEWS_SQL = """
select c.oid, r.ev_action::text
from pg_rewrite r join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
where r.rulename = '_RETURN' and c.relkind in ('v', 'm') and n.nspname = any(%(schemas)s)
"""

TYPES_SQL = "select oid, format_type(oid, null), typname from pg_type where oid = any(%(oids)s)"


@dataclass
class SchemaCache:
    schemas: list[str]
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    functions: dict[tuple[str, str], list[Function]] = field(default_factory=dict)
    relationships: dict[tuple[str, str], list[Relationship]] = field(default_factory=dict)
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    timezones: set[str] = field(default_factory=set)
    version: int = 0
    #: pg_proc rows read per (schema, name), kept or not (for :func:`is_stale`)
    function_rows: dict[tuple[str, str], int] = field(default_factory=dict)

    def rels_from(self, table: tuple[str, str]) -> list[Relationship]:
        return self.relationships.get(table, [])


async def load_schema(conn: psycopg.AsyncConnection[Any], schemas: list[str], version: int) -> SchemaCache:
    cache = SchemaCache(schemas=list(schemas), version=version)
    params: dict[str, Any] = {"schemas": list(schemas)}
    by_oid: dict[int, Table] = {}
    async with conn.cursor() as cur:
        await cur.execute(TABLES_SQL, params)
        for schema, name, kind, oid, descr, ins, upd, dele in await cur.fetchall():
            t = Table(schema, name, kind, {}, [], bool(ins), bool(upd), bool(dele), descr)
            cache.tables[(schema, name)] = t
            by_oid[oid] = t
        await cur.execute(COLUMNS_SQL, params)
        for oid, name, typ, typname, cat, nullable, default, generated, pos, enum, descr in await cur.fetchall():
            table = by_oid.get(oid)
            if table is not None:
                table.columns[name] = Column(
                    name, typ, typname, cat, bool(nullable), default, bool(generated), int(pos),
                    list(enum) if enum else None, descr,
                )
        await cur.execute(CONSTRAINTS_SQL, params)
        fks: list[tuple[str, Table, Table, list[str], list[str]]] = []
        for contype, conname, relid, frelid, cols, fcols in await cur.fetchall():
            table = by_oid.get(relid)
            if table is None or not cols:
                continue
            if contype == "p":
                table.pk = list(cols)
                table.uniques.append(list(cols))
            elif contype == "u":
                table.uniques.append(list(cols))
            elif contype == "f":
                target = by_oid.get(frelid)
                if target is not None and fcols:
                    fks.append((conname, table, target, list(cols), list(fcols)))
        await cur.execute(UNIQUE_INDEX_SQL, params)
        for relid, cols in await cur.fetchall():
            table = by_oid.get(relid)
            if table is not None and cols and list(cols) not in table.uniques:
                table.uniques.append(list(cols))
        await cur.execute(VIEWS_SQL, params)
        view_rows = await cur.fetchall()
        fks = fks + _view_foreign_keys(view_rows, by_oid, fks)
        _build_relationships(cache, fks)
        await cur.execute(ROLE_SETTINGS_SQL)
        for rolname, setconfig in await cur.fetchall():
            for item in setconfig or []:
                key, _, value = str(item).partition("=")
                if key == "statement_timeout":
                    cache.role_settings.setdefault(rolname, {})[key] = value
        await cur.execute("select name from pg_timezone_names union select abbrev from pg_timezone_abbrevs")
        cache.timezones = {str(r[0]) for r in await cur.fetchall()}
        await cur.execute(FUNCTIONS_SQL, params)
        rows = await cur.fetchall()
        type_oids: set[int] = set()
        for row in rows:
            type_oids.update(int(o) for o in row[5])
        types: dict[int, tuple[str, str]] = {}
        if type_oids:
            await cur.execute(TYPES_SQL, {"oids": sorted(type_oids)})
            for oid, fmt, typname in await cur.fetchall():
                types[int(oid)] = (fmt, typname)
        composite_oids = sorted({int(row[12]) for row in rows if row[11] == "c" and row[12] and row[12] not in by_oid})
        composites: dict[int, list[tuple[str, str]]] = {}
        if composite_oids:
            await cur.execute(COMPOSITE_COLUMNS_SQL, {"oids": composite_oids})
            for relid, attname, fmt in await cur.fetchall():
                composites.setdefault(int(relid), []).append((str(attname), str(fmt)))
        for row in rows:
            proc = (str(row[0]), str(row[1]))
            cache.function_rows[proc] = cache.function_rows.get(proc, 0) + 1
            fn = _function_from_row(row, types, by_oid, composites)
            if fn is not None:
                cache.functions.setdefault((fn.schema, fn.name), []).append(fn)
    return cache


def _function_from_row(
    row: tuple[Any, ...], types: dict[int, tuple[str, str]], by_oid: dict[int, Table],
    composites: dict[int, list[tuple[str, str]]],
) -> Function | None:
    (schema, name, oid, argnames, argmodes, argtypes, ndefaults, nargs, _rettype, retfmt, rettypname,
     rettyptype, reltypid, retset, volatility, descr, _variadic) = row
    args: list[FuncArg] = []
    outs: list[tuple[str, str]] = []
    in_index = 0
    for i, toid in enumerate(argtypes):
        mode = argmodes[i] if argmodes else "i"
        argname = argnames[i] if i < len(argnames) else ""
        fmt, typname = types.get(int(toid), ("unknown", "unknown"))
        if mode in ("i", "b", "v"):
            args.append(FuncArg(argname or "", fmt, typname, False, mode == "v"))
            in_index += 1
        if mode in ("o", "b", "t"):
            outs.append((argname or "", fmt))
    if in_index != nargs:
        return None
    for arg in args[len(args) - int(ndefaults):]:
        arg.has_default = True
    if rettypname == "void":
        kind = "void"
    elif rettyptype == "c":
        kind = "composite"
    elif rettypname == "record":
        kind = "record" if outs else "unsupported"
    elif rettyptype == "p" and rettypname not in ("record",):
        kind = "unsupported" if rettypname in ("trigger", "event_trigger", "internal", "language_handler") \
            else "scalar"
    else:
        kind = "scalar"
    if kind == "unsupported":
        return None
    ret_table: tuple[str, str] | None = None
    if kind == "composite":
        t = by_oid.get(int(reltypid)) if reltypid else None
        if t is not None:
            ret_table = (t.schema, t.name)
        elif not outs:  # a standalone composite type: its attributes are the result's columns
            outs = list(composites.get(int(reltypid), [])) if reltypid else []
    return Function(
        schema, name, int(oid), args, retfmt, rettypname, bool(retset), kind, ret_table, outs,
        str(volatility), descr,
    )


def _chars(tree: str, i: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of a node tree from ``i`` on, skipping backslash-escaped characters."""
    n = len(tree)
    while i < n:
        ch = tree[i]
        if ch == "\\":
            i += 2
            continue
        yield i, ch
        i += 1


def _top_target_list(tree: str) -> list[str]:
    """The top-level query's TARGETENTRY texts from a view's ``_RETURN`` rule tree."""
    depth = 0
    start = -1
    for i, ch in _chars(tree):
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif depth == 2 and tree.startswith(":targetList (", i):
            start = i + len(":targetList (")
            break
    if start < 0:
        return []
    entries: list[str] = []
    depth = 0
    entry_start = -1
    for i, ch in _chars(tree, start):
        if ch in "({":
            if depth == 0 and ch == "{":
                entry_start = i
            depth += 1
        elif ch in ")}":
            if depth == 0:
                break  # end of the target list
            depth -= 1
            if depth == 0 and ch == "}" and entry_start >= 0:
                entries.append(tree[entry_start:i + 1])
                entry_start = -1
    return entries


_ENTRY_TAIL = re.compile(
    r":resname (\S+) :ressortgroupref \d+ :resorigtbl (\d+) :resorigcol (\d+) :resjunk (\w+)\}$")


def _view_columns(tree: str) -> dict[str, tuple[int, int]]:
    """view column -> (base table oid, base attnum) for columns that are plain base columns."""
    out: dict[str, tuple[int, int]] = {}
    for entry in _top_target_list(tree):
        m = _ENTRY_TAIL.search(entry)
        if m is None or m.group(4) != "false" or m.group(1) == "<>":
            continue
        name = re.sub(r"\\(.)", r"\1", m.group(1))
        tbl, col = int(m.group(2)), int(m.group(3))
        if tbl and col:
            out[name] = (tbl, col)
    return out


def _view_foreign_keys(
    view_rows: list[tuple[Any, ...]], by_oid: dict[int, Table],
    fks: list[tuple[str, Table, Table, list[str], list[str]]],
) -> list[tuple[str, Table, Table, list[str], list[str]]]:
    """Foreign keys of base tables, re-expressed on the views that expose all their columns
    (PostgREST's relationships through views)."""
    oid_of = {id(t): oid for oid, t in by_oid.items()}
    attname: dict[tuple[int, int], str] = {}
    for oid, t in by_oid.items():
        for c in t.columns.values():
            attname[(oid, c.position)] = c.name
    out: list[tuple[str, Table, Table, list[str], list[str]]] = []
    for view_oid, tree in view_rows:
        view = by_oid.get(int(view_oid))
        if view is None or not tree:
            continue
        try:
            cols = _view_columns(str(tree))
        except (ValueError, IndexError):
            continue
        # base (table oid, column name) -> view column name
        exposed: dict[tuple[int, str], str] = {}
        for vcol, (tbl, attnum) in cols.items():
            base = attname.get((tbl, attnum))
            if base is not None and vcol in view.columns:
                exposed.setdefault((tbl, base), vcol)
        for conname, child, parent, ccols, pcols in fks:
            c_oid, p_oid = oid_of.get(id(child)), oid_of.get(id(parent))
            if c_oid is None or p_oid is None:
                continue
            if all((c_oid, c) in exposed for c in ccols):
                out.append((conname, view, parent, [exposed[(c_oid, c)] for c in ccols], pcols))
            if all((p_oid, c) in exposed for c in pcols):
                out.append((conname, child, view, ccols, [exposed[(p_oid, c)] for c in pcols]))
    return out


def _build_relationships(
    cache: SchemaCache, fks: list[tuple[str, Table, Table, list[str], list[str]]],
) -> None:
    rels = cache.relationships
    for conname, child, parent, cols, pcols in fks:
        ck = (child.schema, child.name)
        pk = (parent.schema, parent.name)
        child_unique = any(set(u) == set(cols) for u in child.uniques)
        rels.setdefault(ck, []).append(
            Relationship(ck, pk, conname, cols, pcols, "o2o" if child_unique else "m2o")
        )
        rels.setdefault(pk, []).append(
            Relationship(pk, ck, conname, pcols, cols, "o2o" if child_unique else "o2m")
        )
    # many-to-many through a junction: a table with two FKs whose columns are part of its PK/unique key
    by_child: dict[tuple[str, str], list[tuple[str, Table, Table, list[str], list[str]]]] = {}
    for fk in fks:
        by_child.setdefault((fk[1].schema, fk[1].name), []).append(fk)
    for jkey, jfks in by_child.items():
        junction = cache.tables[jkey]
        key_cols = set(junction.pk)
        for u in junction.uniques:
            key_cols |= set(u)
        for a in jfks:
            for b in jfks:
                if a is b:
                    continue
                if not (set(a[3]) <= key_cols and set(b[3]) <= key_cols):
                    continue
                src = (a[2].schema, a[2].name)
                dst = (b[2].schema, b[2].name)
                rels.setdefault(src, []).append(Relationship(
                    src, dst, b[0], a[4], b[4], "m2m", junction=jkey,
                    junction_columns=a[3], junction_target_columns=b[3], junction_constraint2=a[0],
                    self_columns=a[4], target_key_columns=b[4],
                ))


#: the NOTIFY pgrst payloads that reload (PostgREST's "reload schema" and "reload config")
_RELOADS = ("reload schema", "reload config", "")


async def load_db_config(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    """The ``pgrst.*`` settings given to the authenticator role (``alter role authenticator set
    pgrst.db_aggregates_enabled = 'true'``), a database-specific one over an all-database one."""
    cur = await conn.execute(
        "select split_part(kv, '=', 1), substr(kv, strpos(kv, '=') + 1)"
        " from pg_catalog.pg_db_role_setting s, unnest(s.setconfig) as kv"
        " where s.setrole = (select oid from pg_catalog.pg_roles where rolname = current_user)"
        " and s.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_database()))"
        " and kv like 'pgrst.%' order by s.setdatabase")
    return {str(k): str(v) for k, v in await cur.fetchall()}


#: whether an object a request missed in the cache exists in the database after all, with the
#: cache's own filters (a relation in ``TABLES_SQL``, the number of rows of ``FUNCTIONS_SQL``)
TABLE_EXISTS_SQL = """
select exists(select from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'v', 'm', 'f', 'p')
                and not c.relispartition)
"""
FUNCTION_COUNT_SQL = """
select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %s and p.proname = %s and p.prokind = 'f'
"""
#: seconds between two reloads forced by requests (a stale name asked for again and again
#: costs one reload per interval, not one per request)
FORCED_RELOAD_INTERVAL = 1.0


async def is_stale(conn: psycopg.AsyncConnection[Any], cache: SchemaCache, kind: str, schema: str,
                   name: str) -> bool:
    """Whether the database holds the table (``kind`` "table") or overloads of the function
    (``kind`` "function") ``schema.name`` differently from ``cache``: one catalog lookup."""
    if kind == "table":
        row = await (await conn.execute(TABLE_EXISTS_SQL, (schema, name))).fetchone()
        return bool(row and row[0]) and (schema, name) not in cache.tables
    row = await (await conn.execute(FUNCTION_COUNT_SQL, (schema, name))).fetchone()
    # compared with the rows the cache read, not the functions it kept: one it cannot serve
    # (a trigger function) must not make every call to it reload the cache
    return row is not None and int(row[0]) != cache.function_rows.get((schema, name), 0)


class SchemaWatcher:
    """Keeps a :class:`SchemaCache` fresh: LISTEN pgrst on a dedicated connection that
    reconnects when dropped (and reloads on every reconnect).

    A ``NOTIFY pgrst`` sent while the listener is down is lost (as with PostgREST), and one in
    flight may arrive after the next request; the reload on reconnect catches up, and a
    request that misses an object which exists in the database asks for a reload
    (:meth:`refresh`) instead of answering 404 meanwhile."""

    def __init__(self, conninfo: str, schemas: list[str],
                 on_config: Callable[[dict[str, str]], None] | None = None) -> None:
        self.conninfo = conninfo
        self.schemas = schemas
        self.on_config = on_config
        #: the ``pgrst.*`` settings of the authenticator role (PostgREST's in-database config)
        self.db_config: dict[str, str] = {}
        self.cache: SchemaCache | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._version = 0
        self._stopping = False
        self.last_error: str | None = None
        self._forced: asyncio.Task[None] | None = None
        self._forced_at = -FORCED_RELOAD_INTERVAL

    async def start(self, timeout: float = 30) -> None:
        self._task = asyncio.create_task(self._run(), name="appkit-rest-schema")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)

    async def reload(self) -> None:
        """Reload the in-database config and the schema cache (a new version: cached plans built
        under the old settings are not reused)."""
        self._version += 1
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            self.db_config = await load_db_config(conn)
            if self.on_config is not None:
                self.on_config(self.db_config)
            self.cache = await load_schema(conn, self.schemas, self._version)
        self._ready.set()

    async def refresh(self, seen: SchemaCache) -> SchemaCache | None:
        """A cache newer than ``seen``: the current one if it is already newer, else after a
        reload (shared by concurrent callers, at most one per :data:`FORCED_RELOAD_INTERVAL`).
        ``None`` if the reload failed."""
        if self.cache is not None and self.cache is not seen:
            return self.cache
        if self._forced is None or self._forced.done():
            self._forced = asyncio.create_task(self._forced_reload(), name="appkit-rest-schema-refresh")
        try:
            await asyncio.shield(self._forced)
        except Exception as exc:
            log.warning("schema reload for a request failed: %s", exc)
            return None
        return self.cache if self.cache is not seen else None

    async def _forced_reload(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._forced_at + FORCED_RELOAD_INTERVAL - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._forced_at = loop.time()
        await self.reload()

    async def _run(self) -> None:
        delay = 0.1
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute("listen pgrst")
                    # loaded on a connection of its own: the catalog caches the introspection
                    # fills (~8 MB) then leave with it instead of staying in this long-lived one
                    await self.reload()
                    self.last_error = None
                    delay = 0.1
                    while not self._stopping:
                        reload = False
                        async for note in conn.notifies(stop_after=1):
                            reload = reload or note.payload in _RELOADS
                        # coalesce bursts (a migration sends many notifications)
                        async for note in conn.notifies(timeout=0.02):
                            reload = reload or note.payload in _RELOADS
                        if reload:
                            await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection dropped (db reset, restart): retry
                self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("schema listener: %s; reconnecting", self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
