"""``appkit studio``: a web console for an appkit project, local or hosted, served on loopback.

Server-rendered Starlette + Jinja2 pages with htmx as progressive enhancement; every asset ships in
the package (``static/``, ``templates/``), nothing comes from a CDN. The studio calls the SDK's public
API with the service role and, where the admin CLI does, the project's database directly; the keys
and the database URL stay in this process and never reach the browser.

Adding a page: see :mod:`appkit.studio.pages` (a module there declaring ``PAGE = Page(...)`` is
mounted automatically; POST endpoints are wrapped in :func:`csrf_protect`; pages get their SDK client
and database connection from :func:`studio_of`; :func:`render` fills a template in the base layout;
bad input raises ``starlette.exceptions.HTTPException(400, ...)`` or an ``appkit.errors`` error, shown
as an error page, never a 500).
"""

from __future__ import annotations

from appkit.studio.app import create_app, error_page
from appkit.studio.pages import Page
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.server import DEFAULT_PORT, StudioServer, serve
from appkit.studio.target import Studio, StudioTarget, studio_of

__all__ = [
    "DEFAULT_PORT",
    "Page",
    "Studio",
    "StudioServer",
    "StudioTarget",
    "create_app",
    "csrf_protect",
    "error_page",
    "redirect",
    "render",
    "serve",
    "studio_of",
]
