"""The Advisors page: the ``appkit db advisors`` findings (Supabase's lints) with remediation links."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.db.advisors import KINDS, Level
from appkit.studio.pages import Page
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

LEVELS = ("info", "warn", "error")


async def advisors(request: Request) -> Response:
    q = request.query_params
    kind = q.get("type") or "all"
    level = q.get("level") or "info"
    if kind not in KINDS:
        raise HTTPException(400, f"type={kind[:40]!r}: use one of {', '.join(KINDS)}")
    if level not in LEVELS:
        raise HTTPException(400, f"level={level[:40]!r}: use one of {', '.join(LEVELS)}")
    run = await studio_of(request).advisors.get()
    minimum = Level.parse(level)
    findings = [f for f in run.findings if f.level.rank >= minimum.rank and f.lint.matches(kind)]
    findings.sort(key=lambda f: -f.level.rank)
    counts = {lv: sum(1 for f in run.findings if f.level.value.lower() == lv) for lv in LEVELS}
    return render(request, "advisors.html", {
        "findings": findings, "kind": kind, "level": level, "kinds": KINDS, "levels": LEVELS, "counts": counts,
        "age": int(time.time() - run.at),
    }, active="advisors")


@csrf_protect
async def rerun(request: Request) -> Response:
    run = await studio_of(request).advisors.get(refresh=True)
    return redirect("/advisors", f"Advisors ran: {len(run.findings)} finding(s).")


PAGE = Page(name="advisors", title="Advisors", path="/advisors", order=70, routes=[
    Route("/advisors", advisors), Route("/advisors/run", rerun, methods=["POST"])])
