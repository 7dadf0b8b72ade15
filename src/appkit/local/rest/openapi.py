"""The OpenAPI (Swagger 2.0) document PostgREST serves at its root, built from the schema
cache: one definition per table/view (column formats, required columns, key notes), a
path per table and per function, and the shared parameters model generators expect."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from appkit.local.rest.schema import Column, Function, SchemaCache, Table

_INT = {"int2", "int4", "int8", "smallint", "integer", "bigint"}
_NUM = {"numeric", "float4", "float8", "real", "double precision", "money"}
_MEDIA = [
    "application/json", "application/vnd.pgrst.object+json;nulls=stripped",
    "application/vnd.pgrst.object+json", "text/csv",
]


def _json_type(type_name: str, category: str) -> dict[str, Any]:
    if category == "A" or type_name.startswith("_"):
        return {"type": "array", "items": {"type": "string"}}
    if type_name in _INT:
        return {"type": "integer"}
    if type_name in _NUM:
        return {"type": "number"}
    if type_name == "bool":
        return {"type": "boolean"}
    if type_name in ("json", "jsonb"):
        return {}
    return {"type": "string"}


def _column_schema(cache: SchemaCache, table: Table, col: Column) -> dict[str, Any]:
    out: dict[str, Any] = {**_json_type(col.type_name, col.category), "format": col.type}
    notes: list[str] = []
    if col.name in table.pk:
        notes.append("This is a Primary Key.<pk/>")
    for rel in cache.rels_from((table.schema, table.name)):
        if rel.cardinality in ("m2o", "o2o") and rel.columns == [col.name] and rel.junction is None \
                and rel.table == (table.schema, table.name) and rel.constraint and rel.target_columns:
            tgt = rel.target[1]
            tc = rel.target_columns[0]
            if (tgt, tc) != (table.name, col.name):
                notes.append(f"This is a Foreign Key to `{tgt}.{tc}`.<fk table='{tgt}' column='{tc}'/>")
    description = col.description or ""
    if notes:
        description = (description + "\n\n" if description else "") + "Note:\n" + "\n".join(notes)
    if description:
        out["description"] = description
    if col.default is not None:
        default = col.default
        if default.endswith("::text") and default.startswith("'"):
            default = default[1:default.rfind("'")].replace("''", "'")
        out["default"] = default
    if col.enum:
        out["enum"] = col.enum
    return out


def _definition(cache: SchemaCache, table: Table) -> dict[str, Any]:
    required = [c.name for c in table.columns.values()
                if not c.nullable and c.default is None and not c.generated]
    out: dict[str, Any] = {
        "properties": {c.name: _column_schema(cache, table, c) for c in table.columns.values()},
        "type": "object",
    }
    if required:
        out["required"] = required
    if table.description:
        out["description"] = table.description
    return out


def _table_path(table: Table) -> dict[str, Any]:
    name = table.name
    filters = [{"$ref": f"#/parameters/rowFilter.{name}.{c}"} for c in table.columns]
    ok = {"description": "OK", "schema": {"items": {"$ref": f"#/definitions/{name}"}, "type": "array"}}
    path: dict[str, Any] = {
        "get": {
            "parameters": [*filters, {"$ref": "#/parameters/select"}, {"$ref": "#/parameters/order"},
                           {"$ref": "#/parameters/range"}, {"$ref": "#/parameters/rangeUnit"},
                           {"$ref": "#/parameters/offset"}, {"$ref": "#/parameters/limit"},
                           {"$ref": "#/parameters/preferCount"}],
            "responses": {"200": ok, "206": {"description": "Partial Content"}},
            "tags": [name],
        },
    }
    if table.description:
        path["get"]["summary"] = table.description
    if table.insertable:
        path["post"] = {
            "parameters": [{"$ref": f"#/parameters/body.{name}"}, {"$ref": "#/parameters/select"},
                           {"$ref": "#/parameters/preferPost"}],
            "responses": {"201": {"description": "Created"}}, "tags": [name],
        }
    if table.updatable:
        path["patch"] = {
            "parameters": [*filters, {"$ref": f"#/parameters/body.{name}"},
                           {"$ref": "#/parameters/preferReturn"}],
            "responses": {"204": {"description": "No Content"}}, "tags": [name],
        }
    if table.deletable:
        path["delete"] = {
            "parameters": [*filters, {"$ref": "#/parameters/preferReturn"}],
            "responses": {"204": {"description": "No Content"}}, "tags": [name],
        }
    return path


def _function_path(fn: Function) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for arg in fn.args:
        if arg.name:
            props[arg.name] = {**_json_type(arg.type_name, "A" if arg.type.endswith("[]") else ""),
                               "format": arg.type}
    required = [a.name for a in fn.args if a.name and not a.has_default]
    body_schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        body_schema["required"] = required
    post: dict[str, Any] = {
        "parameters": [{"in": "body", "name": "args", "required": True, "schema": body_schema},
                       {"$ref": "#/parameters/preferParams"}],
        "produces": ["application/json", "application/vnd.pgrst.object+json"],
        "responses": {"200": {"description": "OK"}},
        "tags": ["(rpc) " + fn.name],
    }
    if fn.description:
        post["summary"] = fn.description
    path: dict[str, Any] = {"post": post}
    if fn.volatility in ("s", "i"):
        path["get"] = {
            "parameters": [{"format": a.type, "in": "query", "name": a.name, "required": not a.has_default,
                            "type": "string"} for a in fn.args if a.name],
            "produces": ["application/json", "application/vnd.pgrst.object+json"],
            "responses": {"200": {"description": "OK"}},
            "tags": ["(rpc) " + fn.name],
        }
    return path


def _parameters(tables: list[Table]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "preferParams": {"name": "Prefer", "description": "Preference", "required": False, "in": "header",
                         "type": "string", "enum": ["params=single-object"]},
        "preferReturn": {"name": "Prefer", "description": "Preference", "required": False, "in": "header",
                         "type": "string", "enum": ["return=representation", "return=minimal", "return=none"]},
        "preferCount": {"name": "Prefer", "description": "Preference", "required": False, "in": "header",
                        "type": "string", "enum": ["count=none"]},
        "preferPost": {"name": "Prefer", "description": "Preference", "required": False, "in": "header",
                       "type": "string",
                       "enum": ["return=representation", "return=minimal", "return=none",
                                "resolution=ignore-duplicates", "resolution=merge-duplicates"]},
        "select": {"name": "select", "description": "Filtering Columns", "required": False, "in": "query",
                   "type": "string"},
        "on_conflict": {"name": "on_conflict", "description": "On Conflict", "required": False, "in": "query",
                        "type": "string"},
        "order": {"name": "order", "description": "Ordering", "required": False, "in": "query",
                  "type": "string"},
        "range": {"name": "Range", "description": "Limiting and Pagination", "required": False,
                  "in": "header", "type": "string"},
        "rangeUnit": {"name": "Range-Unit", "description": "Limiting and Pagination", "required": False,
                      "default": "items", "in": "header", "type": "string"},
        "offset": {"name": "offset", "description": "Limiting and Pagination", "required": False,
                   "in": "query", "type": "string"},
        "limit": {"name": "limit", "description": "Limiting and Pagination", "required": False,
                  "in": "query", "type": "string"},
    }
    for t in tables:
        params[f"body.{t.name}"] = {"name": t.name, "description": t.name, "required": False, "in": "body",
                                    "schema": {"$ref": f"#/definitions/{t.name}"}}
        for c in t.columns.values():
            params[f"rowFilter.{t.name}.{c.name}"] = {"name": c.name, "description": c.description,
                                                      "required": False, "format": c.type, "in": "query",
                                                      "type": "string"}
    return params


def document(cache: SchemaCache, schema: str, api_url: str) -> bytes:
    tables = sorted((t for (s, _), t in cache.tables.items() if s == schema), key=lambda t: t.name)
    funcs = sorted(
        (fs[0] for (s, _), fs in cache.functions.items() if s == schema and fs), key=lambda f: f.name)
    parts = urlsplit(api_url)
    paths: dict[str, Any] = {"/": {"get": {"produces": ["application/openapi+json", "application/json"],
                                           "responses": {"200": {"description": "OK"}},
                                           "summary": "OpenAPI description (this document)",
                                           "tags": ["Introspection"]}}}
    for t in tables:
        paths[f"/{t.name}"] = _table_path(t)
    for f in funcs:
        paths[f"/rpc/{f.name}"] = _function_path(f)
    doc = {
        "swagger": "2.0",
        "info": {"description": "", "title": "standard public schema", "version": "12.2.3"},
        "host": parts.netloc,
        "basePath": "/rest/v1/" if parts.path in ("", "/") else parts.path,
        "schemes": [parts.scheme or "http"],
        "consumes": _MEDIA,
        "produces": _MEDIA,
        "paths": paths,
        "definitions": {t.name: _definition(cache, t) for t in tables},
        "parameters": _parameters(tables),
        "externalDocs": {"description": "PostgREST Documentation", "url": "https://postgrest.org/en/v12/references/api.html"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()
