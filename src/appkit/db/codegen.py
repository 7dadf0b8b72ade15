"""Generate typed appkit ``Model`` classes and RPC wrappers from a live database schema.

``generate_models(db_url, schemas=["public"])`` reads the catalog (queries in
``codegen.sql``) and returns the source of one Python module:

* a ``Literal`` alias per enum and an alias per domain;
* a ``Model`` per table, view, materialized view and foreign table, bound with
  ``table=``/``schema=``/``primary_key=``; a column that is nullable is ``T | None``; one
  the server fills in (default, identity, generated) keeps its exact type but is optional
  on insert (unset fields are never sent, so the server's value applies);
* ``Rpc`` and ``AsyncRpc`` with a typed method per callable function, validating the result.

The output depends only on the schema (everything is sorted), passes ``mypy --strict``,
and carries no timestamp, so ``--check`` can compare it with a file in CI.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from appkit.db.queries import load_queries
from appkit.errors import DatabaseError, ValidationError

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*$")

#: base types by name (pg_catalog) -> Python annotation
_SCALARS: dict[str, str] = {
    "bool": "bool",
    "int2": "int", "int4": "int", "int8": "int", "oid": "int", "xid": "int", "cid": "int",
    "float4": "float", "float8": "float",
    "numeric": "decimal.Decimal",
    "text": "str", "varchar": "str", "bpchar": "str", "char": "str", "name": "str", "citext": "str",
    "uuid": "uuid.UUID",
    "date": "datetime.date",
    "timestamp": "datetime.datetime", "timestamptz": "datetime.datetime",
    "time": "datetime.time", "timetz": "datetime.time",
    "json": "JsonValue", "jsonb": "JsonValue",
    "void": "None",
}


@dataclass(frozen=True)
class PgType:
    oid: int
    schema: str
    name: str
    kind: str  # b base, c composite, d domain, e enum, p pseudo, r range, m multirange
    category: str
    element: int
    base: int
    not_null: bool
    relation: int
    labels: tuple[str, ...] | None


@dataclass(frozen=True)
class Column:
    name: str
    type: int
    not_null: bool
    has_default: bool
    identity: bool
    generated: bool
    comment: str | None

    @property
    def optional_on_insert(self) -> bool:
        return not self.not_null or self.has_default or self.identity or self.generated


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # r table, p partitioned table, v view, m materialized view, f foreign table
    comment: str | None
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...] = ()


@dataclass(frozen=True)
class Function:
    oid: int
    schema: str
    name: str
    arg_types: tuple[int, ...]
    arg_modes: tuple[str, ...]
    arg_names: tuple[str, ...]
    defaults: int
    returns: int
    returns_set: bool
    comment: str | None


@dataclass
class Catalog:
    """What ``generate_models`` reads from the database."""

    schemas: tuple[str, ...]
    types: dict[int, PgType] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)


def read_catalog(db_url: str, schemas: Sequence[str], *, connect_timeout: float = 10) -> Catalog:
    """Introspect ``schemas`` of the database at ``db_url`` (read-only)."""
    names = check_schemas(schemas)
    queries = load_queries("appkit.db", "codegen.sql")
    try:
        conn = psycopg.connect(db_url, connect_timeout=max(1, round(connect_timeout)), prepare_threshold=None,
                               row_factory=dict_row)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database: {_first_line(exc)}") from None
    catalog = Catalog(schemas=tuple(names))
    params = {"schemas": list(names)}
    with conn:
        conn.read_only = True
        try:
            with conn.cursor() as cur:
                cur.execute(queries["schemas"], params)
                present = {r["name"] for r in cur.fetchall()}
                missing = [name for name in names if name not in present]
                if missing:
                    raise ValidationError(f"schema {missing[0]!r} does not exist", code="unknown_schema")
                cur.execute(queries["types"])
                for r in cur.fetchall():
                    labels = r["labels"]
                    catalog.types[r["oid"]] = PgType(r["oid"], r["schema"], r["name"], r["kind"], r["category"],
                                                     r["element"], r["base"], r["not_null"], r["relation"],
                                                     tuple(labels) if labels is not None else None)
                cur.execute(queries["columns"], params)
                columns: dict[int, list[Column]] = {}
                for r in cur.fetchall():
                    columns.setdefault(r["relation"], []).append(
                        Column(r["name"], r["type"], r["not_null"], r["has_default"], r["identity"], r["generated"],
                               r["comment"]))
                cur.execute(queries["relations"], params)
                for r in cur.fetchall():
                    catalog.relations.append(Relation(r["oid"], r["schema"], r["name"], r["kind"], r["comment"],
                                                      tuple(r["primary_key"]), tuple(columns.get(r["oid"], ()))))
                cur.execute(queries["functions"], params)
                for r in cur.fetchall():
                    catalog.functions.append(Function(
                        r["oid"], r["schema"], r["name"], tuple(r["arg_types"]), tuple(r["arg_modes"]),
                        tuple(r["arg_names"]), r["defaults"], r["returns"], r["returns_set"], r["comment"]))
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot read the schema: {_first_line(exc)}", code=exc.sqlstate) from None
        finally:
            if not conn.closed:
                conn.rollback()
    return catalog


def check_schemas(schemas: Iterable[str]) -> list[str]:
    names: list[str] = []
    for schema in schemas:
        if not _SCHEMA_RE.match(schema):
            raise ValidationError(f"invalid schema name {schema!r}", code="invalid_schema")
        if schema not in names:
            names.append(schema)
    if not names:
        raise ValidationError("no schema given", code="invalid_schema")
    return names


def generate_models(db_url: str, schemas: Sequence[str] = ("public",), *, connect_timeout: float = 10) -> str:
    """The source of a module with a ``Model`` per table/view of ``schemas`` and typed RPC wrappers."""
    return render(read_catalog(db_url, schemas, connect_timeout=connect_timeout))


# rendering -------------------------------------------------------------------------------------

_RESERVED_CLASS_NAMES = {
    "Any", "AppKit", "AsyncAppKit", "Field", "JsonValue", "Literal", "Model", "TypeAdapter", "TypeAlias",
    "PydanticValidationError", "Rpc", "AsyncRpc", "BaseModel", "ConfigDict", "datetime", "decimal", "uuid",
    "errors", "encode_value",
}
_MODEL_ATTRIBUTES = {name for name in dir(__import__("pydantic").BaseModel)} | {
    "table_name", "pk_column", "fields", "schema", "copy", "dict", "json", "construct", "validate",
}


def _pascal(name: str) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "X"
    return "T" + text if text[0].isdigit() else text


def _field_name(column: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", column)
    if not text or text[0].isdigit():
        text = "f_" + text
    text = text.lstrip("_") or "f"
    if text[0].isdigit():
        text = "f_" + text
    if keyword.iskeyword(text) or keyword.issoftkeyword(text) or text in _MODEL_ATTRIBUTES \
            or text.startswith("model_"):
        text += "_"
    return text


class _Names:
    """Hands out unique module-level names."""

    def __init__(self) -> None:
        self.used: set[str] = set(_RESERVED_CLASS_NAMES)

    def take(self, wanted: str, fallback: str) -> str:
        for candidate in (wanted, fallback):
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        n = 2
        while f"{fallback}{n}" in self.used:
            n += 1
        self.used.add(f"{fallback}{n}")
        return f"{fallback}{n}"


@dataclass
class _Render:
    catalog: Catalog
    names: _Names = field(default_factory=_Names)
    aliases: dict[int, str] = field(default_factory=dict)  # enum/domain oid -> alias name
    alias_lines: list[str] = field(default_factory=list)
    models: dict[int, str] = field(default_factory=dict)  # relation oid -> class name

    def annotation(self, oid: int) -> str:
        t = self.catalog.types.get(oid)
        if t is None:
            return "Any"
        if t.kind == "e":
            return self.alias(t)
        if t.kind == "d":
            return self.alias(t)
        if t.category == "A" and t.element:
            return f"list[{self.annotation(t.element)}]"
        if t.kind == "c":
            model = self.models.get(t.relation)
            if model is not None:
                return model
            return "dict[str, JsonValue]"
        if t.schema == "pg_catalog" and t.name in _SCALARS:
            return _SCALARS[t.name]
        if t.name == "citext":
            return "str"
        if t.kind == "p":
            return "Any"
        # ranges, network and geometric types, bytea, interval, money, vectors...: PostgREST sends text
        return "str"

    def alias(self, t: PgType) -> str:
        existing = self.aliases.get(t.oid)
        if existing is not None:
            return existing
        name = self.names.take(_pascal(t.name), _pascal(t.schema) + _pascal(t.name))
        self.aliases[t.oid] = name
        if t.kind == "e":
            labels = ", ".join(_lit(label) for label in (t.labels or ()))
            self.alias_lines.append(f"#: enum {t.schema}.{t.name}")
            self.alias_lines.append(f"{name}: TypeAlias = Literal[{labels}]" if labels else f"{name}: TypeAlias = str")
        else:
            base = self.annotation(t.base)
            self.alias_lines.append(f"#: domain {t.schema}.{t.name}" + (" (not null)" if t.not_null else ""))
            self.alias_lines.append(f"{name}: TypeAlias = {base}")
        return name


def _lit(text: str) -> str:
    """``text`` as a Python string literal (JSON's escapes are Python's)."""
    return json.dumps(text, ensure_ascii=False)


def _nullable(annotation: str) -> str:
    return annotation if annotation in ("None", "Any") else f"{annotation} | None"


_KIND_WORDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}


def render(catalog: Catalog) -> str:
    """The generated module for ``catalog`` (deterministic)."""
    r = _Render(catalog)
    relations = sorted(catalog.relations, key=lambda rel: (rel.schema, rel.name))
    multi = len(catalog.schemas) > 1
    # class names first (functions may return a table's rows)
    for rel in relations:
        wanted = _pascal(rel.name) if not multi or rel.schema == catalog.schemas[0] else \
            _pascal(rel.schema) + _pascal(rel.name)
        r.models[rel.oid] = r.names.take(wanted, _pascal(rel.schema) + _pascal(rel.name))
    model_blocks = [_model_block(r, rel) for rel in relations]
    rpc_sync, rpc_async, adapters, row_blocks, skipped = _functions(r)

    head = [
        '"""Models generated by `appkit gen models` from schema'
        + ("s " if multi else " ") + ", ".join(catalog.schemas) + ". Do not edit: re-run the command."
        + '\n\nTables and views are appkit ``Model`` classes; ``Rpc(app)`` / ``AsyncRpc(app)`` call the'
        + '\ndatabase functions with typed arguments and results.\n"""',
        "",
        "import datetime  # noqa: F401",
        "import decimal  # noqa: F401",
        "import uuid  # noqa: F401",
        "from typing import Any, Literal, TypeAlias, TypeVar  # noqa: F401",
        "",
        "from appkit import AppKit, AsyncAppKit, Model, errors",
        "from appkit.model import encode_value",
        "from pydantic import BaseModel, Field, JsonValue, TypeAdapter  # noqa: F401",
        "from pydantic import ValidationError as PydanticValidationError",
        "",
        '_T = TypeVar("_T")',
        "",
        "",
        "def _server_default() -> Any:",
        '    """A column the server fills in: optional on insert, and never sent unless set."""',
        "    return None",
        "",
        "",
        "def _result(adapter: TypeAdapter[_T], data: object, function: str) -> _T:",
        "    try:",
        "        return adapter.validate_python(data)",
        "    except PydanticValidationError as exc:",
        "        raise errors.UnexpectedResponse(",
        '            f"{function} returned a value of an unexpected shape: {exc.errors()[0][\'msg\']}",',
        '            code="unexpected_response",',
        "        ) from None",
    ]
    out = "\n".join(head) + "\n"
    if r.alias_lines:
        out += "\n\n" + "\n".join(_pair_lines(r.alias_lines)) + "\n"
    for block in model_blocks + row_blocks:
        out += "\n\n" + block
    if adapters:
        out += "\n\n" + "\n".join(adapters) + "\n"
    out += "\n\n" + _rpc_class("Rpc", "AppKit", rpc_sync, skipped)
    out += "\n\n" + _rpc_class("AsyncRpc", "AsyncAppKit", rpc_async, skipped)
    return out


def _pair_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(lines), 2):
        if out:
            out.append("")
        out.extend(lines[i:i + 2])
    return out


def _model_block(r: _Render, rel: Relation) -> str:
    name = r.models[rel.oid]
    keywords = [f"table={_lit(rel.name)}", f"schema={_lit(rel.schema)}"]
    pk = rel.primary_key
    if len(pk) == 1 and _field_name(pk[0]) != "id":
        keywords.append(f"primary_key={_lit(_field_name(pk[0]))}")
    lines = [f"class {name}(Model, {', '.join(keywords)}):"]
    doc = f"{_KIND_WORDS.get(rel.kind, 'relation')} {rel.schema}.{rel.name}"
    if rel.comment:
        doc += ": " + " ".join(rel.comment.split())
    if len(pk) > 1:
        doc += f" (composite primary key: {', '.join(pk)})"
    lines.append(f"    {_docstring(doc)}")
    view = rel.kind in ("v", "m", "f")
    if rel.columns:
        lines.append("")
    for col in rel.columns:
        ann = r.annotation(col.type)
        nullable = not col.not_null or view
        field_name = _field_name(col.name)
        alias = f"alias={_lit(col.name)}" if field_name != col.name else ""
        if nullable:
            ann = _nullable(ann)
            default = f"Field(default=None, {alias})" if alias else "None"
        elif col.optional_on_insert:
            default = f"Field(default_factory=_server_default, {alias})" if alias else "_server_default()"
        else:
            default = f"Field({alias})" if alias else ""
        note = ""
        if not nullable:
            if col.generated:
                note = "  # generated"
            elif col.identity:
                note = "  # identity"
            elif col.has_default:
                note = "  # server default"
        line = f"    {field_name}: {ann}" + (f" = {default}" if default else "") + note
        lines.append(line)
        if col.comment:
            lines.append(f"    {_docstring(' '.join(col.comment.split()))}")
    return "\n".join(lines) + "\n"


def _docstring(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text += " "
    return f'"""{text}"""'


def _functions(r: _Render) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    catalog = r.catalog
    by_name: dict[tuple[str, str], list[Function]] = {}
    for fn in catalog.functions:
        by_name.setdefault((fn.schema, fn.name), []).append(fn)
    sync_methods: list[str] = []
    async_methods: list[str] = []
    adapters: list[str] = []
    rows: list[str] = []
    skipped: list[str] = []
    method_names: set[str] = set()
    for (schema, fname), overloads in sorted(by_name.items()):
        qualified = f"{schema}.{fname}"
        if len(overloads) > 1:
            skipped.append(f"{qualified} (overloaded)")
            continue
        fn = overloads[0]
        reason = _uncallable(catalog, fn)
        if reason:
            skipped.append(f"{qualified} ({reason})")
            continue
        inputs = [(n, t) for n, t, m in zip(fn.arg_names or ("",) * len(fn.arg_types), fn.arg_types,
                                            fn.arg_modes, strict=False) if m in ("i", "b", "v")]
        outputs = [(n, t) for n, t, m in zip(fn.arg_names or ("",) * len(fn.arg_types), fn.arg_types,
                                             fn.arg_modes, strict=False) if m in ("o", "b", "t")]
        method = _field_name(fname) if len(catalog.schemas) == 1 else _field_name(f"{schema}_{fname}")
        if method in method_names or method in ("app",):
            method += "_"
        method_names.add(method)
        # result type
        if outputs and (len(outputs) > 1 or (catalog.types.get(fn.returns, None) is not None
                        and catalog.types[fn.returns].name == "record")):
            row_name = r.names.take(_pascal(fname) + "Row", _pascal(schema) + _pascal(fname) + "Row")
            body = [f"class {row_name}(BaseModel):", f"    {_docstring(f'A row of {qualified}().')}", ""]
            for out_name, out_type in outputs:
                fld = _field_name(out_name)
                default = f"Field(default=None, alias={_lit(out_name)})" if fld != out_name else "None"
                body.append(f"    {fld}: {_nullable(r.annotation(out_type))} = {default}")
            rows.append("\n".join(body) + "\n")
            item = row_name
        else:
            item = r.annotation(fn.returns)
        result = f"list[{item}]" if fn.returns_set else item
        adapter = f"_{method.upper()}_RESULT"
        if result != "None":  # a void function answers with an empty body: nothing to check
            adapters.append(f"{adapter}: TypeAdapter[{result}] = TypeAdapter({result})")
        # parameters
        required_count = len(inputs) - fn.defaults
        params: list[str] = []
        assigns: list[str] = []
        for i, (arg, arg_type) in enumerate(inputs):
            py = _field_name(arg)
            ann = r.annotation(arg_type)
            if i < required_count:
                params.append(f"{py}: {ann}")
                assigns.append(f"        params[{_lit(arg)}] = encode_value({py})")
            else:
                params.append(f"{py}: {ann} | None = None")
                assigns.append(f"        if {py} is not None:")
                assigns.append(f"            params[{_lit(arg)}] = encode_value({py})")
        signature = ", *, " + ", ".join(params) if params else ""
        doc = f"{qualified}({', '.join(a for a, _ in inputs)})"
        if fn.comment:
            doc += ": " + " ".join(fn.comment.split())
        call = f"self._app.rpc({_lit(fname)}, params, schema={_lit(schema)})"
        for target, prefix, awaiting in ((sync_methods, "def", ""), (async_methods, "async def", "await ")):
            target.append("\n".join([
                f"    {prefix} {method}(self{signature}) -> {result}:",
                f"        {_docstring(doc)}",
                "        params: dict[str, Any] = {}",
                *assigns,
                *([f"        {awaiting}{call}"] if result == "None" else [
                    f"        data = {awaiting}{call}",
                    f"        return _result({adapter}, data, {_lit(qualified)})",
                ]),
            ]))
    return sync_methods, async_methods, adapters, rows, skipped


def _uncallable(catalog: Catalog, fn: Function) -> str | None:
    ret = catalog.types.get(fn.returns)
    if ret is not None and ret.name in ("trigger", "event_trigger", "internal", "language_handler",
                                        "fdw_handler", "index_am_handler", "tsm_handler", "table_am_handler"):
        return f"returns {ret.name}"
    for name, mode, oid in zip(fn.arg_names or ("",) * len(fn.arg_types), fn.arg_modes, fn.arg_types, strict=False):
        if mode in ("i", "b", "v") and not name:
            return "unnamed argument"
        t = catalog.types.get(oid)
        if t is not None and t.kind == "p" and t.name not in ("record",):
            return f"{t.name} argument"
    if ret is not None and ret.kind == "p" and ret.name not in ("void", "record"):
        return f"returns {ret.name}"
    return None


def _rpc_class(name: str, client: str, methods: list[str], skipped: list[str]) -> str:
    kind = "async " if name.startswith("Async") else ""
    lines = [
        f"class {name}:",
        f'    """Typed {kind}calls of the database functions, as the caller ``app`` is allowed to make them.',
    ]
    if skipped:
        lines.append("")
        lines.append("    Not generated: " + "; ".join(skipped) + ".")
    lines += [
        '    """',
        "",
        f"    def __init__(self, app: {client}) -> None:",
        "        self._app = app",
    ]
    out = "\n".join(lines) + "\n"
    for method in methods:
        out += "\n" + method + "\n"
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["Catalog", "check_schemas", "generate_models", "read_catalog", "render"]

