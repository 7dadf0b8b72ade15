"""Rendering pages: the Jinja2 environment (autoescaped, templates shipped in the package) and
:func:`render`, which fills in what every page's layout needs (navigation, CSRF token, flash text)."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from appkit.studio.security import CSRF_FIELD, csrf_token

FLASH_PARAM = "flash"


def _fmt_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)[:19].replace("T", " ")


def _fmt_bytes(value: Any) -> str:
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("appkit.studio", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _fmt_time
    env.filters["bytes"] = _fmt_bytes
    env.filters["pretty_json"] = _to_json
    env.globals["urlencode"] = urlencode
    env.globals["csrf_field_name"] = CSRF_FIELD
    return env


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200, active: str | None = None) -> HTMLResponse:
    """The page ``template`` filled with ``context`` and the layout's variables."""
    from appkit.studio.pages import registered

    pages = registered(request.app)
    values: dict[str, Any] = {
        "request": request,
        "nav": [p for p in pages if p.nav],
        "active": active,
        "csrf_token": csrf_token(request),
        "flash": request.query_params.get(FLASH_PARAM, "")[:300],
        "target": request.app.state.studio.target,
    }
    values.update(context or {})
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status)


def redirect(path: str, flash: str | None = None, **params: str) -> RedirectResponse:
    """A 303 to ``path`` (Post/Redirect/Get), with a one-line message shown on the next page."""
    query = {k: v for k, v in params.items() if v}
    if flash:
        query[FLASH_PARAM] = flash
    return RedirectResponse(path + ("?" + urlencode(query) if query else ""), status_code=303)
