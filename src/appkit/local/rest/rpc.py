"""Function calls (``/rpc/<name>``): overload resolution from the given arguments, and the call."""

from __future__ import annotations

import json
from typing import Any

from appkit.local.rest.builder import (
    RESPONSE_GUCS,
    Params,
    Source,
    ident,
    qualified,
    type_sql,
)
from appkit.local.rest.errors import RestError
from appkit.local.rest.executor import RestCaller
from appkit.local.rest.headers import Prefer
from appkit.local.rest.http import RestRequest, RestResponse, json_body
from appkit.local.rest.negotiation import apply_response_gucs, singular_error
from appkit.local.rest.parser import NodeQuery
from appkit.local.rest.plan import parse_plan
from appkit.local.rest.reads import Reads
from appkit.local.rest.schema import Column, Function, SchemaCache


class Rpc(Reads):
    """POST, GET and HEAD on ``/rpc/<name>``."""

    async def rpc(self, req: RestRequest, caller: RestCaller, cache: SchemaCache, schema: str,
                  name: str) -> RestResponse:
        if req.method not in ("GET", "HEAD", "POST"):
            raise RestError(405, "PGRST101", "Only GET and POST verbs are allowed for functions")
        overloads = cache.functions.get((schema, name), [])
        if not overloads:
            raise RestError(
                404, "PGRST202", f"Could not find the function {schema}.{name} in the schema cache",
                hint="Perhaps you meant to call a different function, or the schema cache is stale.",
                missing=("function", schema, name),
            )
        prefer = self._prefer(req)
        body: Any = None
        if req.method == "POST":
            body = json_body(req)
            if body is None:
                body = {}
        all_arg_names = {a.name for f in overloads for a in f.args if a.name}
        if req.method == "POST":
            plan = parse_plan(req)
            given = set(body.keys()) if isinstance(body, dict) else set()
        else:
            plan = parse_plan(req, all_arg_names)
            given = set(plan.args)
        fn = self._pick_function(schema, name, overloads, given, body, prefer, req.method)
        if req.method in ("GET", "HEAD") and fn.volatility == "v":
            pass  # runs read-only: a write fails with 25006 -> 405, as in PostgREST
        params = Params()
        fq = qualified(fn.schema, fn.name)
        single_json = fn.single_unnamed_json or (
            prefer.params == "single-object" and len(fn.args) == 1 and fn.args[0].type_name in ("json", "jsonb"))
        if single_json and req.method == "POST":
            call = f"{fq}({params.add(req.body.decode('utf-8') or '{}')}::{type_sql(fn.args[0].type)})"
            args_from = ""
        else:
            if req.method == "POST":
                if not isinstance(body, dict):
                    raise RestError(400, "PGRST102", "Empty or invalid json",
                                   details="function arguments must be a JSON object")
                payload = req.body.decode("utf-8") if req.body.strip() else "{}"
                names = [a for a in fn.args if a.name in given]
            else:
                payload = json.dumps(plan.args)
                names = [a for a in fn.args if a.name in given]
            if names:
                defs = ", ".join(f"{ident(a.name)} {type_sql(a.type)}" for a in names)
                args_from = f"json_to_record({params.add(payload)}::json) AS pgrst_args({defs})"
                call = f"{fq}(" + ", ".join(
                    f"{'VARIADIC ' if a.variadic else ''}{ident(a.name)} := pgrst_args.{ident(a.name)}"
                    for a in names) + ")"
            else:
                args_from = ""
                call = f"{fq}()"
        kind, _ = self._accept(req)
        read_only = req.method in ("GET", "HEAD")
        rollback = prefer.tx == "rollback"
        prefix = f"{args_from}, LATERAL " if args_from else ""
        if fn.return_kind in ("composite", "record"):
            if fn.return_table is not None and fn.return_table in cache.tables:
                rt = cache.tables[fn.return_table]
                columns = rt.columns
                key: tuple[str, str] | None = fn.return_table
            else:
                columns = {n: Column(n, t, t, "U", True, None, False, i)
                           for i, (n, t) in enumerate(fn.return_columns)}
                key = None
            source = Source(fn.name, columns, key, lambda a: f"{prefix}{call} AS {ident(a)}")
            if fn.returns_set:
                return await self.read(req, caller, cache, schema, source, plan, params)
            resp = await self.read(req, caller, cache, schema, source, plan, params)
            if kind == "json" and resp.status < 300:
                # a single composite: PostgREST answers the object itself
                resp.body = resp.body.strip()
                resp.body = resp.body[1:-1].strip() if resp.body != b"[]" else b"null"
            return resp
        if fn.return_kind == "void":
            inner_call = f"SELECT {call} AS v FROM {args_from}" if args_from else f"SELECT {call} AS v"
            # the outer query reads the call's result: an output nobody reads is dropped by the
            # planner when the function is not volatile, and a stable/immutable function's call
            # (its RAISE, its response.* settings) would never run (PostgREST aggregates the row)
            sql_text = f"SELECT {RESPONSE_GUCS}, pgrst_t.v IS NULL FROM ({inner_call} OFFSET 0) AS pgrst_t"
            vrow, _ = await self.execute(req, caller, schema, sql_text, params.values, read_only=read_only,
                                         rollback=rollback)
            assert vrow is not None
            return apply_response_gucs(RestResponse(204, b"", {}, None), vrow[0], vrow[1])
        # scalar (or setof scalar)
        if fn.returns_set:
            from_sql = f"{prefix}{call} AS pgrst_f(v)"
            root = plan.queries.get((), NodeQuery())
            limit, offset = self._limits(req, plan)
            inner = f"SELECT pgrst_f.v FROM {from_sql}"
            if limit is not None:
                inner += f" LIMIT {params.add(limit)}"
            if offset:
                inner += f" OFFSET {params.add(offset)}"
            del root
            sql_text = (f"SELECT pg_catalog.count(*), convert_to(coalesce(json_agg(pgrst_t.v), '[]'::json)::text, "
                        f"'UTF8'), {RESPONSE_GUCS} FROM ({inner}) AS pgrst_t")
        else:
            inner_call = f"SELECT {call} AS v FROM {args_from}" if args_from else f"SELECT {call} AS v"
            sql_text = (f"SELECT 1, convert_to(coalesce(to_json(pgrst_t.v), 'null'::json)::text, 'UTF8'), "
                        f"{RESPONSE_GUCS} FROM ({inner_call} OFFSET 0) AS pgrst_t")
        row, _ = await self.execute(req, caller, schema, sql_text, params.values, read_only=read_only,
                                    rollback=rollback)
        assert row is not None
        body_bytes: bytes = row[1]
        n = int(row[0])
        headers = {"Content-Range": f"0-{n - 1}/*" if n else "*/*"}
        if kind == "object" and fn.returns_set:
            if n != 1:
                raise singular_error(n)
            body_bytes = body_bytes.strip()[1:-1].strip()
        return apply_response_gucs(RestResponse(200, body_bytes, headers), row[2], row[3])

    def _pick_function(self, schema: str, name: str, overloads: list[Function], given: set[str], body: Any,
                       prefer: Prefer, method: str) -> Function:
        cands: list[Function] = []
        for fn in overloads:
            if method == "POST" and (fn.single_unnamed_json or (
                    prefer.params == "single-object" and len(fn.args) == 1
                    and fn.args[0].type_name in ("json", "jsonb"))):
                cands.append(fn)
                continue
            names = {a.name for a in fn.args}
            required = {a.name for a in fn.args if not a.has_default}
            if "" in names:
                continue
            if given <= names and required <= given:
                cands.append(fn)
        if len(cands) > 1:
            # prefer an exact name match over one that leaves defaults unset
            exact = [f for f in cands if {a.name for a in f.args} == given]
            if len(exact) == 1:
                cands = exact
        if not cands:
            args_text = ", ".join(sorted(given))
            raise RestError(
                404, "PGRST202",
                f"Could not find the function {schema}.{name}({args_text}) in the schema cache"
                if given else f"Could not find the function {schema}.{name} without parameters in the schema cache",
                hint="Perhaps you meant to call a different function, or the schema cache is stale.",
                details=f"Searched for the function {schema}.{name} with parameters {args_text or '(none)'}, "
                        "but no matches were found in the schema cache.",
                missing=("function", schema, name),
            )
        if len(cands) > 1:
            raise RestError(
                300, "PGRST203",
                "Could not choose the best candidate function between: "
                + ", ".join(f"{schema}.{name}({', '.join(a.name + ' => ' + a.type for a in f.args)})"
                            for f in cands),
                hint="Try renaming the parameters or the function itself in the database so function "
                     "overloading can be resolved",
            )
        return cands[0]
