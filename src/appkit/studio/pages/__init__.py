"""The studio's page registration point: every module in this package that defines ``PAGE`` is a page.

To add a page, create ``appkit/studio/pages/<name>.py`` with its endpoints and a template in
``appkit/studio/templates/``, then declare it::

    from appkit.studio.pages import Page
    from appkit.studio.render import render

    async def index(request: Request) -> Response:
        rows = ...  # studio_of(request).admin (SDK) or `async with studio_of(request).db() as conn`
        return render(request, "things.html", {"rows": rows}, active="things")

    @csrf_protect                      # every POST must be wrapped (create_app checks)
    async def delete(request: Request) -> Response: ...

    PAGE = Page(name="things", title="Things", path="/things", order=50, routes=[
        Route("/things", index), Route("/things/{id}/delete", delete, methods=["POST"])])

The app factory imports every module here once and mounts their routes; the navigation lists the pages
in ``order``. ``local_only`` pages (Mail) are left out against a hosted project.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import BaseRoute


@dataclass(frozen=True)
class Page:
    """One console page: its navigation entry and its routes."""

    name: str
    title: str
    path: str
    routes: list[BaseRoute] = field(default_factory=list)
    order: int = 100
    nav: bool = True
    local_only: bool = False


def discover() -> list[Page]:
    """Every ``PAGE`` declared by a module of this package, in navigation order."""
    pages: list[Page] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        page = getattr(module, "PAGE", None)
        if isinstance(page, Page):
            pages.append(page)
    names = [p.name for p in pages]
    if len(names) != len(set(names)):
        raise RuntimeError(f"two studio pages share a name: {sorted(names)}")
    return sorted(pages, key=lambda p: (p.order, p.name))


def registered(app: Starlette) -> list[Page]:
    """The pages mounted in ``app``."""
    pages: list[Page] = app.state.pages
    return pages
