"""The Migrations page: applied, pending, drift and remote-only migrations, as ``appkit db status``."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.db import MigrationRunner, MigrationStatus, discover_migrations
from appkit.studio.pages import Page
from appkit.studio.render import render
from appkit.studio.target import studio_of


async def migrations(request: Request) -> Response:
    target = studio_of(request).target
    folder = target.migrations_dir

    def status() -> list[MigrationStatus]:
        local = discover_migrations(folder) if folder is not None else []
        return MigrationRunner(target.db_url).status(local)

    rows = await anyio.to_thread.run_sync(status)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    return render(request, "migrations.html", {"rows": rows, "counts": counts, "folder": folder},
                  active="migrations")


PAGE = Page(name="migrations", title="Migrations", path="/migrations", order=75, routes=[
    Route("/migrations", migrations)])
