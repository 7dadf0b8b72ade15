"""The Audit log page: entries filtered by organization, table, actor and time, newest first with keyset
paging (a direct read of ``appkit.audit_log``, as ``appkit audit list`` does)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit import errors
from appkit.audit.models import audit_filter
from appkit.db.queries import load_queries
from appkit.studio.pages import Page
from appkit.studio.pages import _forms as f
from appkit.studio.render import render
from appkit.studio.target import studio_of

PAGE_SIZE = 100


def _queries() -> dict[str, Any]:
    return load_queries("appkit.studio.pages", "audit.sql")


async def index(request: Request) -> Response:
    q = request.query_params
    values = {"org": f.text(q, "org", max_len=100), "table": f.text(q, "table", max_len=200),
              "actor": f.text(q, "actor", max_len=100), "since": f.text(q, "since", max_len=40),
              "until": f.text(q, "until", max_len=40)}
    try:
        filt = audit_filter(org=values["org"] or None, table=values["table"] or None, actor=values["actor"] or None,
                            since=f.when(q, "since"), until=f.when(q, "until"), limit=PAGE_SIZE)
    except errors.ValidationError as exc:
        raise HTTPException(400, str(exc)) from None
    before = f.integer(q, "before")
    params = {"org": filt.org, "schema": filt.table_schema, "name": filt.table_name, "actor": filt.actor,
              "since": filt.since, "until": filt.until, "before_id": before, "limit": PAGE_SIZE + 1}
    async with studio_of(request).db() as conn:
        rows = await (await conn.execute(_queries()["entries"], params)).fetchall()
        tables = [r["name"] for r in await (await conn.execute(_queries()["audited_tables"])).fetchall()]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_query = {k: v for k, v in values.items() if v}
    if more and rows:
        next_query["before"] = str(rows[-1]["id"])
    return render(request, "audit.html", {"entries": rows, "filters": values, "tables": tables,
                                          "next_query": next_query if more else None}, active="audit")


PAGE = Page(name="audit", title="Audit log", path="/audit", order=70, routes=[Route("/audit", index)])
