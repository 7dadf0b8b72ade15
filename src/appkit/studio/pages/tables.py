"""The Tables page: schemas and tables with row counts, a keyset-paged sortable filterable grid, and row
insert/edit/delete with type-aware inputs, all optionally "viewed as" anon, a user or the service role."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from appkit import errors
from appkit.studio import grid
from appkit.studio.pages import Page
from appkit.studio.render import FLASH_PARAM, redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

MAX_CELL = 200


def _grid_url(schema: str, table: str, params: list[tuple[str, str]]) -> str:
    query = urlencode([(k, v) for k, v in params if v != ""])
    return f"/tables/{schema}/{table}" + (f"?{query}" if query else "")


async def index(request: Request) -> Response:
    async with studio_of(request).db() as conn:
        tables = await grid.list_tables(conn)
        who = await grid.caller(conn, request.query_params.get("as"))  # carried into each table's link
    schemas: dict[str, list[dict[str, Any]]] = {}
    for t in tables:
        schemas.setdefault(t["schema"], []).append(t)
    return render(request, "tables.html", {"schemas": schemas, "who": who, "as_param": who.param}, active="tables")


def _params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != FLASH_PARAM]


async def table(request: Request) -> Response:
    schema, name = request.path_params["schema"], request.path_params["table"]
    params = _params(request)
    q = request.query_params
    if "fcol" in q:  # the "add filter" form: canonical column=op.value URL
        kept = [(k, v) for k, v in params if k not in ("fcol", "fop", "fval", "after", "before", "offset")]
        column, op = q.get("fcol", ""), q.get("fop", "eq")
        if column:
            kept.append((column, f"{op}.{q.get('fval', '')}"))
        return RedirectResponse(_grid_url(schema, name, kept), status_code=303)
    studio = studio_of(request)
    async with studio.db() as conn:
        rel = await grid.relation(conn, schema, name)
        filters = grid.parse_filters(rel, params)
        order = grid.parse_order(rel, q.get("order"))
        limit = grid.parse_limit(q.get("limit"))
        offset = grid.parse_offset(q.get("offset"))
        if q.get("after") and q.get("before"):
            raise grid.BadQuery("after and before go alone", code="bad_cursor")
        who = await grid.caller(conn, q.get("as"))
        async with grid.as_caller(conn, who, read_only=True):
            page = await grid.fetch_page(conn, rel, filters=filters, order=order, limit=limit,
                                         after=q.get("after"), before=q.get("before"), offset=offset)
    base = [(k, v) for k, v in params if k not in ("after", "before", "offset")]

    def link(**extra: str) -> str:
        return _grid_url(schema, name, [*base, *extra.items()])

    def sort_link(column: str) -> str:
        desc = order.column == column and not order.desc
        kept = [(k, v) for k, v in base if k != "order"]
        return _grid_url(schema, name, [*kept, ("order", f"{column}.{'desc' if desc else 'asc'}")])

    def without(f: grid.Filter) -> str:
        return _grid_url(schema, name, [(k, v) for k, v in base if (k, v) != f.param])

    def cell_url(key: str, column: str) -> str:
        query = urlencode({"key": key, "col": column, **({"as": who.param} if who.param else {})})
        return f"/tables/{schema}/{name}/cell?{query}"

    rows = [[None if v is None else (v if len(v) <= MAX_CELL else v[:MAX_CELL] + "…") for v in r] for r in page.rows]
    return render(request, "table.html", {
        "rel": rel, "page": page, "rows": rows, "filters": filters, "order": order, "who": who, "limit": limit,
        "next_url": link(after=page.next_cursor) if page.next_cursor else
        (link(offset=str(page.next_offset)) if page.next_offset is not None else None),
        "prev_url": link(before=page.prev_cursor) if page.prev_cursor else
        (link(offset=str(page.prev_offset)) if page.prev_offset is not None else None),
        "first_url": link() if (q.get("after") or q.get("before") or offset) else None,
        "sort_link": sort_link, "without": without, "cell_url": cell_url, "ops": list(grid.OPS),
        "as_param": who.param, "hidden": [(k, v) for k, v in base], "base_url": _grid_url(schema, name, []),
    }, active="tables")


def _row_url(schema: str, table: str, key: str, who: str, suffix: str = "") -> str:
    query = urlencode({"key": key, **({"as": who} if who else {})})
    return f"/tables/{schema}/{table}/row{suffix}?{query}"


async def _context(request: Request) -> tuple[grid.Relation, grid.Caller]:
    schema, name = request.path_params["schema"], request.path_params["table"]
    async with studio_of(request).db() as conn:
        rel = await grid.relation(conn, schema, name)
        who = await grid.caller(conn, request.query_params.get("as"))
    return rel, who


def _form_page(request: Request, rel: grid.Relation, who: grid.Caller, *, values: dict[str, str | None],
               key: str | None, error: str | None = None, status: int = 200) -> Response:
    return render(request, "row.html", {"rel": rel, "who": who, "values": values, "key": key, "error": error,
                                        "as_param": who.param}, status=status, active="tables")


async def new_row(request: Request) -> Response:
    rel, who = await _context(request)
    if not rel.insertable:
        raise HTTPException(400, f"{rel.schema}.{rel.name} is a view: rows cannot be inserted")
    return _form_page(request, rel, who, values={}, key=None)


def _status(exc: errors.AppKitError) -> int:
    if isinstance(exc, errors.PermissionDenied):
        return 403
    if isinstance(exc, errors.Conflict):
        return 409
    return 400


@csrf_protect
async def create_row(request: Request) -> Response:
    rel, who = await _context(request)
    form = await request.form()
    values = grid.form_values(rel, form, insert=True)
    try:
        async with studio_of(request).db() as conn, grid.as_caller(conn, who):
            key = await grid.insert_row(conn, rel, values, returning=who.is_admin)
    except (errors.ValidationError, errors.PermissionDenied, errors.Conflict, errors.DatabaseError) as exc:
        return _form_page(request, rel, who, values=values, key=None, error=str(exc), status=_status(exc))
    if key is not None:
        return RedirectResponse(_row_url(rel.schema, rel.name, key, who.param) + "&" +
                                urlencode({FLASH_PARAM: "Row inserted."}), status_code=303)
    return redirect(f"/tables/{rel.schema}/{rel.name}", "Row inserted.", **({"as": who.param} if who.param else {}))


def _key(request: Request) -> str:
    key = request.query_params.get("key")
    if not key:
        raise HTTPException(400, "missing ?key= (the row's primary key)")
    return key


async def show_row(request: Request) -> Response:
    rel, who = await _context(request)
    key = _key(request)
    async with studio_of(request).db() as conn, grid.as_caller(conn, who, read_only=True):
        row = await grid.get_row(conn, rel, key)
    if row is None:
        raise HTTPException(404, f"no such row in {rel.schema}.{rel.name} (or RLS hides it from {who.label})")
    values = {c.name: v for c, v in zip(rel.columns, row, strict=True)}
    return _form_page(request, rel, who, values=values, key=key)


@csrf_protect
async def save_row(request: Request) -> Response:
    rel, who = await _context(request)
    key = _key(request)
    form = await request.form()
    values = grid.form_values(rel, form, insert=False)
    try:
        async with studio_of(request).db() as conn, grid.as_caller(conn, who):
            changed = await grid.update_row(conn, rel, key, values)
    except (errors.ValidationError, errors.PermissionDenied, errors.Conflict, errors.DatabaseError) as exc:
        return _form_page(request, rel, who, values={**values}, key=key, error=str(exc), status=_status(exc))
    if not changed:
        raise HTTPException(404, f"no row was updated: it is gone, or RLS hides it from {who.label}")
    return RedirectResponse(_row_url(rel.schema, rel.name, key, who.param) + "&" +
                            urlencode({FLASH_PARAM: "Row saved."}), status_code=303)


@csrf_protect
async def remove_row(request: Request) -> Response:
    rel, who = await _context(request)
    key = _key(request)
    async with studio_of(request).db() as conn, grid.as_caller(conn, who):
        deleted = await grid.delete_row(conn, rel, key)
    if not deleted:
        raise HTTPException(404, f"no row was deleted: it is gone, or RLS hides it from {who.label}")
    return redirect(f"/tables/{rel.schema}/{rel.name}", "Row deleted.", **({"as": who.param} if who.param else {}))


def _cell_context(request: Request, rel: grid.Relation) -> tuple[str, grid.Column]:
    key = _key(request)
    name = request.query_params.get("col") or ""
    col = rel.column(name)
    if not (rel.editable and col.writable_on_update):
        raise HTTPException(400, f"{rel.schema}.{rel.name}.{name} cannot be edited in place")
    return key, col


def _cell(request: Request, rel: grid.Relation, who: grid.Caller, key: str, col: grid.Column,
          value: str | None, *, editing: bool, error: str | None = None, status: int = 200) -> Response:
    query = urlencode({"key": key, "col": col.name, **({"as": who.param} if who.param else {})})
    return render(request, "cell.html", {"rel": rel, "col": col, "value": value, "editing": editing,
                                         "error": error, "url": f"/tables/{rel.schema}/{rel.name}/cell?{query}"},
                  status=status)


async def edit_cell(request: Request) -> Response:
    """htmx: one grid cell as a small form (a double-click on the cell asks for it)."""
    rel, who = await _context(request)
    key, col = _cell_context(request, rel)
    async with studio_of(request).db() as conn, grid.as_caller(conn, who, read_only=True):
        row = await grid.get_row(conn, rel, key)
    if row is None:
        raise HTTPException(404, f"no such row (or RLS hides it from {who.label})")
    value = row[rel.columns.index(col)]
    return _cell(request, rel, who, key, col, value, editing=True)


@csrf_protect
async def save_cell(request: Request) -> Response:
    """htmx: save one cell and answer the cell as the grid shows it."""
    rel, who = await _context(request)
    key, col = _cell_context(request, rel)
    values = grid.form_values(rel, await request.form(), insert=False)
    values = {col.name: values[col.name]} if col.name in values else {}
    try:
        async with studio_of(request).db() as conn, grid.as_caller(conn, who):
            changed = await grid.update_row(conn, rel, key, values)
            row = await grid.get_row(conn, rel, key) if changed else None
    except (errors.ValidationError, errors.PermissionDenied, errors.Conflict, errors.DatabaseError) as exc:
        return _cell(request, rel, who, key, col, values.get(col.name), editing=True, error=str(exc),
                     status=_status(exc))
    if row is None:
        raise HTTPException(404, f"no row was updated: it is gone, or RLS hides it from {who.label}")
    return _cell(request, rel, who, key, col, row[rel.columns.index(col)], editing=False)


PAGE = Page(name="tables", title="Tables", path="/tables", order=10, routes=[
    Route("/tables", index),
    Route("/tables/{schema}/{table}", table),
    Route("/tables/{schema}/{table}/new", new_row),
    Route("/tables/{schema}/{table}/new", create_row, methods=["POST"]),
    Route("/tables/{schema}/{table}/row", show_row),
    Route("/tables/{schema}/{table}/row", save_row, methods=["POST"]),
    Route("/tables/{schema}/{table}/row/delete", remove_row, methods=["POST"]),
    Route("/tables/{schema}/{table}/cell", edit_cell),
    Route("/tables/{schema}/{table}/cell", save_cell, methods=["POST"]),
])
