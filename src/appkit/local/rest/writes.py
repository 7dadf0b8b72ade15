"""Writes: insert and upsert, update, delete, with ``Prefer: return=...`` and the mutation's WHERE."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from appkit.local.rest.builder import (
    RESPONSE_GUCS,
    Params,
    ReadBuilder,
    Source,
    ident,
    qualified,
    response_body_sql,
    table_source,
    type_sql,
)
from appkit.local.rest.errors import RestError, column_not_found
from appkit.local.rest.executor import Executor, RestCaller
from appkit.local.rest.headers import Prefer
from appkit.local.rest.http import JSON_CT, RestRequest, RestResponse, json_body
from appkit.local.rest.names import Field
from appkit.local.rest.negotiation import Negotiation, apply_response_gucs, singular_error
from appkit.local.rest.parser import Filter, NodeQuery
from appkit.local.rest.plan import Plan, parse_plan
from appkit.local.rest.schema import SchemaCache, Table
from appkit.local.rest.select import SelectField


class Writes(Executor, Negotiation):
    """POST, PATCH, PUT and DELETE on tables."""

    async def insert(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str, table: Table,
                     *, upsert_put: bool) -> RestResponse:
        plan = parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        body = json_body(req)
        if isinstance(body, dict):
            rows = [body]
        elif isinstance(body, list) and all(isinstance(r, dict) for r in body):
            rows = body
        else:
            raise RestError(400, "PGRST102", "Empty or invalid json",
                           details="the body must be a JSON object or an array of objects")
        if upsert_put:
            if len(rows) != 1:
                raise RestError(400, "PGRST102", "PUT requires a single JSON object")
            self._check_put(plan, table, rows[0])
        if plan.columns is not None:
            cols = plan.columns
        elif rows:
            cols = list(rows[0].keys())
            if len(rows) > 1:
                keyset = set(cols)
                for r in rows[1:]:
                    if set(r.keys()) != keyset:
                        raise RestError(400, "PGRST102", "All object keys must match")
        else:
            cols = []
        for c in cols:
            if c not in table.columns:
                raise column_not_found(table.name, c)
        tq = qualified(schema, table.name)
        params = Params()
        payload = req.body.strip()
        if isinstance(body, dict):
            payload = b"[" + payload + b"]"
        body_param = params.add(payload.decode("utf-8"))
        col_list = ", ".join(ident(c) for c in cols)
        if prefer.missing == "default":
            exprs = []
            for c in cols:
                col = table.columns[c]
                if col.default is not None:
                    exprs.append(f"CASE WHEN pgrst_e.v ? {params.add(c)} THEN pgrst_r.{ident(c)} "
                                 f"ELSE {type_sql(col.default)} END")
                else:
                    exprs.append(f"pgrst_r.{ident(c)}")
            src = (f"SELECT {', '.join(exprs)} FROM jsonb_array_elements({body_param}::jsonb) AS pgrst_e(v), "
                   f"LATERAL jsonb_populate_record(NULL::{tq}, pgrst_e.v) AS pgrst_r")
        else:
            src = (f"SELECT {', '.join('pgrst_b.' + ident(c) for c in cols)} "
                   f"FROM json_populate_recordset(NULL::{tq}, {body_param}::json) AS pgrst_b")
        if cols:
            dml = f"INSERT INTO {tq} AS t0 ({col_list}) {src}"
        else:
            # every column from its default, once per row
            dml = (f"INSERT INTO {tq} AS t0 SELECT (NULL::{tq}).* FROM json_array_elements({body_param}::json) "
                   "WHERE FALSE")
            if rows:
                dml = f"INSERT INTO {tq} AS t0 DEFAULT VALUES"
                if len(rows) > 1:
                    raise RestError(400, "PGRST102", "Inserting several empty objects is not supported")
        resolution = prefer.resolution
        if upsert_put:
            resolution = "merge-duplicates"
        if resolution is not None:
            conflict = plan.on_conflict or table.pk
            if not conflict:
                raise RestError(400, "PGRST100", f"on_conflict is required: '{table.name}' has no primary key")
            for c in conflict:
                if c not in table.columns:
                    raise column_not_found(table.name, c)
            target = ", ".join(ident(c) for c in conflict)
            if resolution == "ignore-duplicates" or not cols:
                dml += f" ON CONFLICT ({target}) DO NOTHING"
            else:
                sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in cols)
                dml += f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
        status = 200 if upsert_put else 201
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip,
                                  status, location=not upsert_put)

    def _check_put(self, plan: Plan, table: Table, row: dict[str, Any]) -> None:
        root = plan.queries.get((), NodeQuery())
        if root.limit is not None or root.offset is not None:
            raise RestError(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT")
        eqs: dict[str, str] = {}
        for flt in root.filters:
            if not isinstance(flt, Filter) or flt.op != "eq" or flt.negate or flt.field.json_path \
                    or not isinstance(flt.value, str):
                raise RestError(405, "PGRST105", "Filters must include all and only primary key columns with "
                                                "'eq' operators")
            eqs[flt.field.name] = flt.value
        if not table.pk or set(eqs) != set(table.pk):
            raise RestError(405, "PGRST105", "Filters must include all and only primary key columns with "
                                            "'eq' operators")
        for k in table.pk:
            if k not in row or str(row[k]) != eqs[k]:
                raise RestError(400, "PGRST115", "Payload values do not match URL in primary key column(s)")

    async def update(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str,
                     table: Table) -> RestResponse:
        plan = parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        body = json_body(req)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RestError(400, "PGRST102", "Empty or invalid json", details="PATCH needs a JSON object")
        cols = plan.columns if plan.columns is not None else list(body.keys())
        for c in cols:
            if c not in table.columns:
                raise column_not_found(table.name, c)
        tq = qualified(schema, table.name)
        params = Params()
        where = self._mutation_where(cache, table, plan, params)
        if not cols:
            # nothing to change: PostgREST answers as if no row matched
            empty_body = b"[]" if kind == "json" else b""
            if (prefer.return_ == "representation") and kind == "json":
                return RestResponse(200, empty_body, {"Content-Range": "*/*"})
            return RestResponse(204, b"", {"Content-Range": "*/*"}, None)
        body_param = params.add(req.body.decode("utf-8"))
        sets = ", ".join(f"{ident(c)} = pgrst_b.{ident(c)}" for c in cols)
        dml = (f"UPDATE {tq} AS t0 SET {sets} FROM (SELECT * FROM json_populate_record(NULL::{tq}, "
               f"{body_param}::json)) AS pgrst_b{where}")
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip, 200)

    async def delete(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str,
                     table: Table) -> RestResponse:
        plan = parse_plan(req)
        prefer = self._prefer(req)
        kind, strip = self._accept(req)
        tq = qualified(schema, table.name)
        params = Params()
        where = self._mutation_where(cache, table, plan, params)
        dml = f"DELETE FROM {tq} AS t0{where}"
        return await self._mutate(req, caller, cache, schema, table, dml, params, plan, prefer, kind, strip, 200)

    def _mutation_where(self, cache: SchemaCache, table: Table, plan: Plan, params: Params) -> str:
        root = plan.queries.get((), NodeQuery())
        for path in plan.queries:
            if path:
                raise RestError(400, "PGRST108", f"'{'.'.join(path)}' is not an embedded resource in this request")
        rb = ReadBuilder(cache, params, {})
        src = table_source(table)
        conds = [rb.filter_sql(f, src, "t0", {}) for f in root.filters]
        return (" WHERE " + " AND ".join(conds)) if conds else ""

    async def _mutate(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str, table: Table,
                      dml: str, params: Params, plan: Plan, prefer: Prefer, kind: str, strip: bool,
                      status: int, *, location: bool = False) -> RestResponse:
        ret = prefer.return_ or "minimal"
        headers: dict[str, str] = {}
        applied = prefer.applied()
        if applied:
            headers["Preference-Applied"] = applied
        max_affected = prefer.max_affected if prefer.handling == "strict" else None

        def check_count(n: int) -> None:
            if max_affected is not None and n > max_affected:
                raise RestError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                               details=f"The query affects {n} rows")
            if kind == "object" and n != 1:
                raise singular_error(n)

        rollback = prefer.tx == "rollback"
        # only these need to see the result before COMMIT; other writes take the one-round-trip path
        needs_check = max_affected is not None or kind == "object"
        if ret == "minimal" and not (location and ret == "headers-only"):
            _, n = await self.execute(
                req, caller, schema, dml, params.values, read_only=False, rollback=rollback, fetch=False,
                check=(lambda _row, n: check_count(n)) if needs_check else None,
            )
            headers["Content-Range"] = f"*/{n}" if prefer.count else "*/*"
            return RestResponse(201 if status == 201 else 204, b"", headers, None)
        select = plan.select
        if ret == "headers-only":
            select = [SelectField(Field(c)) for c in table.pk]
        source = Source(table.name, table.columns, (table.schema, table.name),
                        lambda a: f"pgrst_source AS {ident(a)}")
        rb = ReadBuilder(cache, params, {k: v for k, v in plan.queries.items() if k})
        built = rb.build(source, select, (), "t0")
        selects = ", ".join(f"{e} AS {ident(n)}" for e, n in built.selects)
        body_sql = response_body_sql(kind if kind != "object" else "json", strip, [n for _, n in built.selects])
        sql_text = (f"WITH pgrst_source AS ({dml} RETURNING t0.*) "
                    f"SELECT NULL::bigint, pg_catalog.count(*), {body_sql}, {RESPONSE_GUCS} FROM "
                    f"(SELECT {selects} FROM pgrst_source AS t0 {' '.join(built.joins)}) AS pgrst_t")
        row, _ = await self.execute(
            req, caller, schema, sql_text, params.values, read_only=False, rollback=rollback,
            check=(lambda row, _n: check_count(int(row[1]) if row else 0)) if needs_check else None,
        )
        assert row is not None
        n = int(row[1])
        body: bytes = row[2]
        headers["Content-Range"] = f"*/{n}" if prefer.count else "*/*"
        if ret == "headers-only":
            if location and n >= 1 and table.pk:
                first = json.loads(body)[0]
                qs = "&".join(f"{quote(k)}=eq.{quote(str(first.get(k)))}" for k in table.pk)
                headers["Location"] = f"/{quote(table.name)}?{qs}"
            return RestResponse(status if status == 201 else 204, b"", headers, None)
        ct = JSON_CT
        if kind == "object":
            body = body.strip()[1:-1].strip()
            ct = b"application/vnd.pgrst.object+json; charset=utf-8"
        elif kind == "csv":
            ct = b"text/csv; charset=utf-8"
        return apply_response_gucs(RestResponse(status, body, headers, ct), row[3], row[4])
