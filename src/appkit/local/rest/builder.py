"""Turn parsed requests into one parameterised SQL statement that makes Postgres build the
response body (json_agg / row_to_json), as PostgREST does.

Identifiers only ever come from the schema cache and are quoted; every value is a bound
parameter (``%(pN)s``; Python ``str`` is sent with the *unknown* type so Postgres casts
it to the column's type, exactly like PostgREST's untyped literals).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from appkit.local.rest.errors import RestError, undefined_column
from appkit.local.rest.names import Field
from appkit.local.rest.parser import Filter, Logic, NodeQuery, OrderTerm, Quoted
from appkit.local.rest.plan import Plan
from appkit.local.rest.schema import Column, Relationship, SchemaCache, Table
from appkit.local.rest.select import SelectEmbed, SelectField, SelectItem, SelectStar


@functools.lru_cache(maxsize=8192)
def ident(name: str) -> str:
    """A quoted identifier, safe to splice into SQL that later goes through %-formatting."""
    return sql.Identifier(name).as_string(None).replace("%", "%%")


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def type_sql(type_text: str) -> str:
    """A type name from the catalog (format_type output), made safe for %-formatting."""
    return type_text.replace("%", "%%")


class Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        key = f"p{len(self.values) + 1}"
        self.values[key] = value
        return f"%({key})s"


def pg_array_literal(values: list[str]) -> str:
    """A Postgres array literal; an unquoted ``null`` item is SQL NULL, a quoted one the string."""
    parts = []
    for v in values:
        if v.lower() == "null" and not isinstance(v, Quoted):
            parts.append("NULL")
        else:
            parts.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


@dataclass
class Source:
    """Something rows come from: a table/view, a DML's returned rows, or a function call."""

    label: str  # name used in error messages
    columns: dict[str, Column]
    key: tuple[str, str] | None  # table key, for relationships
    from_clause: Callable[[str], str]  # alias -> "<from item> AS alias"


def table_source(table: Table) -> Source:
    q = qualified(table.schema, table.name)
    return Source(table.name, table.columns, (table.schema, table.name), lambda a: f"{q} AS {ident(a)}")


@dataclass
class Built:
    selects: list[tuple[str, str]] = field(default_factory=list)  # (expr, output name)
    joins: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    where_uses_joins: bool = False
    order: list[str] = field(default_factory=list)
    #: the plain (non-aggregate) select expressions, grouped by when ``aggregated``
    group_by: list[str] = field(default_factory=list)
    aggregated: bool = False


_OPS = {
    "eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE", "ilike": "ILIKE",
    "match": "~", "imatch": "~*", "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<", "sr": ">>", "nxl": "&>",
    "nxr": "&<", "adj": "-|-",
}
_FTS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
        "wfts": "websearch_to_tsquery"}
_INT_RE = re.compile(r"^-?\d+$")


class ReadBuilder:
    """Builds SELECT lists, lateral joins for embedded resources, filters and ordering."""

    def __init__(self, cache: SchemaCache, params: Params, queries: dict[tuple[str, ...], NodeQuery],
                 *, aggregates: bool = False) -> None:
        self.cache = cache
        self.params = params
        self.queries = queries
        #: ``pgrst.db_aggregates_enabled``: off, an aggregate is PostgREST's PGRST123
        self.aggregates = aggregates
        self.used_paths: set[tuple[str, ...]] = set()
        self._n = 0

    def alias(self, prefix: str = "pgrst") -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    # -- expressions --------------------------------------------------------------------------
    def field_expr(self, f: Field, source: Source, alias: str) -> str:
        if f.name not in source.columns:
            raise undefined_column(source.label, f.name)
        expr = f"{ident(alias)}.{ident(f.name)}"
        for op, key in f.json_path:
            if _INT_RE.match(key):
                expr = f"{expr}{op}{self.params.add(int(key))}"
            else:
                expr = f"{expr}{op}{self.params.add(key)}"
        if f.json_path:
            expr = f"({expr})"
        return expr

    def filter_sql(self, flt: Filter | Logic, source: Source, alias: str, embeds: dict[str, str]) -> str:
        if isinstance(flt, Logic):
            joiner = " AND " if flt.op == "and" else " OR "
            inner = joiner.join(self.filter_sql(c, source, alias, embeds) for c in flt.children) or "TRUE"
            out = f"({inner})"
            return f"NOT {out}" if flt.negate else out
        # filtering on an embedded resource's presence: ?rel=is.null / not.is.null
        if flt.field.name not in source.columns and flt.field.name in embeds and not flt.field.json_path:
            if flt.op != "is" or flt.value not in ("null", "not_null"):
                raise RestError(400, "PGRST100", f"only is.null / not.is.null can filter the embedded "
                                                 f"resource '{flt.field.name}'")
            is_null = (flt.value == "null") != flt.negate
            return f"({embeds[flt.field.name]} IS {'NULL' if is_null else 'NOT NULL'})"
        col = source.columns.get(flt.field.name)
        expr = self.field_expr(flt.field, source, alias)
        cond = self._op_sql(flt, expr, col)
        return f"NOT ({cond})" if flt.negate else cond

    def _op_sql(self, flt: Filter, expr: str, col: Column | None) -> str:
        op = flt.op
        val = flt.value
        if op == "is":
            word = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE",
                    "unknown": "UNKNOWN"}[str(val)]
            return f"{expr} IS {word}"
        if op == "in":
            assert isinstance(val, list)
            return f"{expr} = ANY({self.params.add(pg_array_literal(val))})"
        if op == "isdistinct":
            return f"{expr} IS DISTINCT FROM {self.params.add(val)}"
        if op in _FTS:
            fn = _FTS[op]
            if flt.config:
                return f"{expr} @@ {fn}({self.params.add(flt.config)}::regconfig, {self.params.add(val)})"
            return f"{expr} @@ {fn}({self.params.add(val)})"
        sym = _OPS[op]
        if flt.quant is not None:
            assert isinstance(val, list)
            items = [v.replace("*", "%") for v in val] if op in ("like", "ilike") else val
            return f"{expr} {sym} {flt.quant.upper()}({self.params.add(pg_array_literal(items))})"
        assert isinstance(val, str)
        if op in ("like", "ilike"):
            val = val.replace("*", "%")
        if op in ("cs", "cd", "ov") and val.startswith("(") and val.endswith(")") and \
                col is not None and col.category == "A" and not flt.field.json_path:
            from appkit.local.rest.parser import parse_list
            val = pg_array_literal(parse_list(val, "filter"))
        return f"{expr} {sym} {self.params.add(val)}"

    # -- relationships -----------------------------------------------------------------------------
    def find_relationship(self, source: Source, embed: SelectEmbed) -> tuple[Relationship, Table]:
        if source.key is None:
            raise RestError(400, "PGRST200", f"Could not find a relationship between '{source.label}' and "
                                            f"'{embed.relation}' in the schema cache")
        rels = self.cache.rels_from(source.key)
        name = embed.relation
        cands = [r for r in rels if r.target[1] == name and r.target[0] in (source.key[0], *self.cache.schemas)]
        same_schema = [r for r in cands if r.target[0] == source.key[0]]
        if same_schema:
            cands = same_schema
        if not cands:
            # embedding by foreign-key column name or constraint name
            cands = [r for r in rels if r.cardinality != "m2m" and (r.constraint == name or (
                r.cardinality in ("m2o", "o2o") and r.columns == [name]))]
        if embed.hint:
            h = embed.hint
            cands = [
                r for r in cands
                if r.constraint == h or r.junction_constraint2 == h
                or (r.junction is not None and r.junction[1] == h)
                or (r.cardinality != "m2m" and (r.columns == [h] or r.target_columns == [h]))
            ]
        if not cands:
            raise RestError(
                400, "PGRST200",
                f"Could not find a relationship between '{source.label}' and '{name}' in the schema cache",
                hint="Perhaps you meant a different relationship, or the schema cache is stale "
                     "(NOTIFY pgrst, 'reload schema').",
                details=f"Searched for a foreign key relationship between '{source.label}' and '{name}'"
                        + (f" using the hint '{embed.hint}'" if embed.hint else "") + " in the schema "
                        f"'{source.key[0]}', but no matches were found.",
            )
        if len(cands) > 1:
            details = [
                {"cardinality": {"m2o": "many-to-one", "o2m": "one-to-many", "o2o": "one-to-one",
                                 "m2m": "many-to-many"}[r.cardinality],
                 "embedding": f"{source.label} with {r.target[1]}",
                 "relationship": (f"{r.constraint} using {r.junction[1]}" if r.junction else r.constraint)}
                for r in cands
            ]
            raise RestError(
                300, "PGRST201",
                f"Could not embed because more than one relationship was found for '{source.label}' "
                f"and '{name}'",
                details=details,
                hint=f"Try changing '{name}' to one of the following: "
                     + ", ".join(f"'{name}!{r.constraint}'" for r in cands)
                     + ". Find the desired relationship in the 'details' key.",
            )
        rel = cands[0]
        return rel, self.cache.tables[rel.target]

    # -- select lists ------------------------------------------------------------------------------
    def build(self, source: Source, items: list[SelectItem], path: tuple[str, ...], alias: str) -> Built:
        self.used_paths.add(path)
        out = Built()
        embeds_null: dict[str, str] = {}
        embed_rels: dict[str, tuple[Relationship, Table]] = {}
        for item in items:
            if isinstance(item, SelectStar):
                for name in source.columns:
                    out.selects.append((f"{ident(alias)}.{ident(name)}", name))
                    out.group_by.append(f"{ident(alias)}.{ident(name)}")
            elif isinstance(item, SelectField) and item.aggregate:
                out.selects.append((self._aggregate_expr(item, source, alias, path), item.output_name))
                out.aggregated = True
            elif isinstance(item, SelectField):
                expr = self.field_expr(item.field, source, alias)
                if item.cast:
                    expr = f"CAST({expr} AS {item.cast})"
                out.selects.append((expr, item.output_name))
                out.group_by.append(expr)
            else:
                self._embed(source, item, path, alias, out, embeds_null, embed_rels)
        if out.aggregated and out.joins:
            raise RestError(400, "PGRST123", "Aggregates together with embedded resources are not supported by "
                                            "the local stack")
        q = self.queries.get(path)
        if q is not None:
            for flt in q.filters:
                cond = self.filter_sql(flt, source, alias, embeds_null)
                if any(v in cond for v in embeds_null.values()):
                    out.where_uses_joins = True
                out.where.append(cond)
            for term in q.order:
                out.order.append(self.order_sql(term, source, alias, embed_rels))
        return out

    def _aggregate_expr(self, item: SelectField, source: Source, alias: str, path: tuple[str, ...]) -> str:
        if not self.aggregates:
            raise RestError(400, "PGRST123", "Use of aggregate functions is not allowed")
        if path:
            raise RestError(400, "PGRST123", "Aggregates inside embedded resources are not supported by the "
                                            "local stack")
        arg = "*" if item.field.name == "*" else self.field_expr(item.field, source, alias)
        expr = f"pg_catalog.{item.aggregate}({arg})"
        return f"CAST({expr} AS {item.cast})" if item.cast else expr

    def order_sql(self, term: OrderTerm, source: Source, alias: str,
                  embed_rels: dict[str, tuple[Relationship, Table]]) -> str:
        if term.relation is not None:
            found = embed_rels.get(term.relation)
            if found is None:
                raise RestError(400, "PGRST108", f"'{term.relation}' is not an embedded resource in this request",
                               hint=f"Verify that '{term.relation}' is included in the 'select' query parameter.")
            rel, target = found
            if rel.cardinality not in ("m2o", "o2o"):
                raise RestError(400, "PGRST118", f"A related order on '{term.relation}' is not possible",
                               details=f"'{source.label}' and '{term.relation}' do not form a many-to-one or "
                                       "one-to-one relationship")
            ta = self.alias()
            tsrc = table_source(target)
            expr = self.field_expr(term.field, tsrc, ta)
            cond = " AND ".join(f"{ident(ta)}.{ident(tc)} = {ident(alias)}.{ident(c)}"
                                for c, tc in zip(rel.columns, rel.target_columns, strict=True))
            sql_ = f"(SELECT {expr} FROM {tsrc.from_clause(ta)} WHERE {cond})"
        else:
            sql_ = self.field_expr(term.field, source, alias)
        sql_ += " DESC" if term.desc else " ASC"
        if term.nulls:
            sql_ += f" NULLS {term.nulls.upper()}"
        return sql_

    def _embed(self, source: Source, embed: SelectEmbed, path: tuple[str, ...], alias: str, out: Built,
               embeds_null: dict[str, str], embed_rels: dict[str, tuple[Relationship, Table]]) -> None:
        rel, target = self.find_relationship(source, embed)
        child_path = (*path, embed.output_name)
        if embed.alias is not None:
            # filters may address the embed by its relation name too
            alt = (*path, embed.relation)
            if alt in self.queries and child_path not in self.queries:
                self.queries[child_path] = self.queries[alt]
                self.used_paths.add(alt)
        ta = self.alias()
        tsrc = table_source(target)
        child = self.build(tsrc, embed.items, child_path, ta)
        conds: list[str] = []
        from_sql = tsrc.from_clause(ta)
        if rel.cardinality == "m2m":
            assert rel.junction is not None
            ja = self.alias()
            jt = self.cache.tables[rel.junction]
            on = " AND ".join(f"{ident(ja)}.{ident(jc)} = {ident(ta)}.{ident(tc)}"
                              for jc, tc in zip(rel.junction_target_columns, rel.target_key_columns, strict=True))
            from_sql += f" JOIN {qualified(jt.schema, jt.name)} AS {ident(ja)} ON {on}"
            conds += [f"{ident(ja)}.{ident(jc)} = {ident(alias)}.{ident(sc)}"
                      for jc, sc in zip(rel.junction_columns, rel.self_columns, strict=True)]
        else:
            conds += [f"{ident(ta)}.{ident(tc)} = {ident(alias)}.{ident(c)}"
                      for c, tc in zip(rel.columns, rel.target_columns, strict=True)]
        to_one = rel.cardinality in ("m2o", "o2o")
        if embed.spread and not to_one:
            raise RestError(400, "PGRST119", f"A spread operation on '{embed.relation}' is not possible",
                           details=f"'{source.label}' and '{embed.relation}' do not form a many-to-one "
                                   "or one-to-one relationship")
        selects = ", ".join(f"{e} AS {ident(n)}" for e, n in child.selects)
        if embed.spread:
            selects = (selects + ", " if selects else "") + "TRUE AS pgrst_present"
        inner = f"SELECT {selects} FROM {from_sql} {' '.join(child.joins)} WHERE {' AND '.join(conds + child.where)}"
        q = self.queries.get(child_path)
        if not to_one:
            if child.order:
                inner += " ORDER BY " + ", ".join(child.order)
            if q is not None and q.limit is not None:
                inner += f" LIMIT {self.params.add(q.limit)}"
            if q is not None and q.offset is not None:
                inner += f" OFFSET {self.params.add(q.offset)}"
        lat = self.alias("pgrst_lat")
        embed_rels[embed.output_name] = (rel, target)
        if embed.spread:
            out.joins.append(f"LEFT JOIN LATERAL ({inner}) AS {ident(lat)} ON TRUE")
            for _, n in child.selects:
                out.selects.append((f"{ident(lat)}.{ident(n)}", n))
            present = f"{ident(lat)}.pgrst_present"
        elif to_one:
            out.joins.append(
                f"LEFT JOIN LATERAL (SELECT row_to_json(pgrst_x) AS body FROM ({inner}) AS pgrst_x) "
                f"AS {ident(lat)} ON TRUE"
            )
            present = f"{ident(lat)}.body"
            if embed.items:
                out.selects.append((present, embed.output_name))
        else:
            out.joins.append(
                f"LEFT JOIN LATERAL (SELECT json_agg(pgrst_x) AS body FROM ({inner}) AS pgrst_x) "
                f"AS {ident(lat)} ON TRUE"
            )
            present = f"{ident(lat)}.body"
            if embed.items:
                out.selects.append((f"COALESCE({present}, '[]'::json)", embed.output_name))
        embeds_null[embed.output_name] = present
        if embed.join == "inner":
            out.where.append(f"{present} IS NOT NULL")
            out.where_uses_joins = True


def check_paths(rb: ReadBuilder) -> None:
    for path in rb.queries:
        if path and path not in rb.used_paths:
            name = ".".join(path)
            raise RestError(400, "PGRST108", f"'{name}' is not an embedded resource in this request",
                           hint=f"Verify that '{name}' is included in the 'select' query parameter.")


#: set by functions/triggers to change the response, read after the statement (aggregates
#: project their target list after consuming every input row)
RESPONSE_GUCS = "current_setting('response.headers', true), current_setting('response.status', true)"


@dataclass
class ReadSQL:
    sql: str
    count_from: str
    params: dict[str, Any]


def read_sql(cache: SchemaCache, source: Source, plan: Plan, params: Params, *, kind: str, strip: bool,
             count: str | None, limit: int | None, offset: int, max_rows: int | None,
             stream: bool = False, aggregates: bool = False) -> ReadSQL:
    """The one statement answering a read: Postgres builds the body (json_agg / csv)."""
    rb = ReadBuilder(cache, params, plan.queries, aggregates=aggregates)
    built = rb.build(source, plan.select, (), "t0")
    check_paths(rb)
    selects = ", ".join(f"{e} AS {ident(n)}" for e, n in built.selects)
    where = (" WHERE " + " AND ".join(built.where)) if built.where else ""
    joins = " ".join(built.joins)
    inner = f"SELECT {selects} FROM {source.from_clause('t0')} {joins}{where}"
    if built.aggregated and built.group_by:
        inner += " GROUP BY " + ", ".join(built.group_by)
    if built.order:
        inner += " ORDER BY " + ", ".join(built.order)
    if limit is not None:
        inner += f" LIMIT {params.add(limit)}"
    if offset:
        inner += f" OFFSET {params.add(offset)}"
    count_from = f"{source.from_clause('t0')} {joins if built.where_uses_joins else ''}{where}"
    if stream:
        row = "json_strip_nulls(row_to_json(pgrst_t))" if strip else "row_to_json(pgrst_t)"
        return ReadSQL(f"SELECT pg_catalog.count(*) OVER () AS n, {row}::text FROM ({inner}) AS pgrst_t",
                       count_from, params.values)
    count_sql = "NULL::bigint"
    if count == "exact":
        count_sql = f"(SELECT pg_catalog.count(*) FROM {count_from})"
    elif count == "estimated" and max_rows is not None:
        count_sql = (f"(SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {count_from} "
                     f"LIMIT {params.add(max_rows + 1)}) pgrst_c)")
    body_sql = response_body_sql(kind, strip, [n for _, n in built.selects])
    sql_text = (f"SELECT {count_sql} AS total, pg_catalog.count(*) AS page_total, {body_sql} AS body, "
                f"{RESPONSE_GUCS} FROM ({inner}) AS pgrst_t")
    return ReadSQL(sql_text, count_from, params.values)


def response_body_sql(kind: str, strip: bool, names: list[str]) -> str:
    if kind == "csv":
        header = ",".join(_csv_quote(n) for n in names).replace("%", "%%")
        lit = "'" + header.replace("'", "''") + "'"
        return (
            f"convert_to({lit} || chr(10) || coalesce(string_agg(substring(pgrst_t::text, 2, "
            "length(pgrst_t::text) - 2), chr(10)), ''), 'UTF8')"
        )
    agg = "coalesce(json_agg(pgrst_t), '[]'::json)"
    if strip:
        agg = f"json_strip_nulls({agg})"
    return f"convert_to({agg}::text, 'UTF8')"


def _csv_quote(name: str) -> str:
    if any(c in name for c in ',"\n\r '):
        return '"' + name.replace('"', '""') + '"'
    return name
