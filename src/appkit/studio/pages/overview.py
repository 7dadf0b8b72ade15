"""The Overview page: services up or down, database size, request and error rates, advisor findings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit import errors
from appkit.studio.pages import Page
from appkit.studio.render import render
from appkit.studio.target import Studio, studio_of

#: a hosted project has no gateway-wide /health: each service's own health endpoint instead
_SERVICE_PROBES = {"auth": "/auth/v1/health", "rest": "/rest/v1/", "storage": "/storage/v1/bucket"}


@dataclass
class Sample:
    """Request counters at one moment, to turn the next sample into rates."""

    at: float
    requests: dict[str, float] = field(default_factory=dict)  # service -> total
    errors: dict[tuple[str, str], float] = field(default_factory=dict)  # (service, class) -> total


def parse_metrics(text: str) -> tuple[Sample, dict[str, float]]:
    """The request/error counters and the plain gauges of a Prometheus text exposition."""
    sample = Sample(time.time())
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "appkit_http_requests_total":
                svc = s.labels.get("service", "")
                sample.requests[svc] = sample.requests.get(svc, 0.0) + s.value
            elif s.name == "appkit_http_errors_total":
                key = (s.labels.get("service", ""), s.labels.get("class", ""))
                sample.errors[key] = sample.errors.get(key, 0.0) + s.value
            elif family.type == "gauge" and not s.labels:
                gauges[s.name] = s.value
    return sample, gauges


async def _health(client: httpx.AsyncClient, studio: Studio) -> tuple[list[dict[str, Any]], str | None]:
    """Each service's state, and a problem reaching the project (None when it answered)."""
    target = studio.target
    headers = {"apikey": target.service_role_key, "Authorization": f"Bearer {target.service_role_key}"}
    try:
        resp = await client.get(target.api_url + "/health")
        if resp.status_code in (200, 503) and resp.headers.get("content-type", "").startswith("application/json"):
            body = resp.json()
            down = set(body.get("down") or [])
            services = [{"name": name, "up": "database" not in down} for name in body.get("services") or []]
            return [{"name": "database", "up": "database" not in down}, *services], body.get("reason")

        async def probe(name: str, path: str) -> dict[str, Any]:
            try:
                answer = await client.get(target.api_url + path, headers=headers)
            except httpx.HTTPError:
                return {"name": name, "up": False}
            return {"name": name, "up": answer.status_code < 500}

        return list(await asyncio.gather(*(probe(n, p) for n, p in _SERVICE_PROBES.items()))), None
    except (httpx.HTTPError, ValueError) as exc:
        return [], f"cannot reach {target.api_url}: {type(exc).__name__}"


async def _metrics(client: httpx.AsyncClient, studio: Studio) -> tuple[Sample, dict[str, float]] | None:
    key = studio.target.service_role_key
    try:
        resp = await client.get(studio.target.api_url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError:
        return None
    if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/plain"):
        return None
    try:
        return parse_metrics(resp.text)
    except ValueError:
        return None


def _rates(previous: Sample | None, current: Sample) -> list[dict[str, Any]]:
    rows = []
    span = current.at - previous.at if previous is not None else 0.0
    for svc in sorted(current.requests):
        errs = sum(v for (s, _), v in current.errors.items() if s == svc)
        row: dict[str, Any] = {"service": svc or "other", "requests": int(current.requests[svc]), "errors": int(errs),
                               "rate": None, "error_rate": None}
        if previous is not None and span > 0:
            row["rate"] = max(0.0, current.requests[svc] - previous.requests.get(svc, 0.0)) / span * 60
            before = sum(v for (s, _), v in previous.errors.items() if s == svc)
            row["error_rate"] = max(0.0, errs - before) / span * 60
        rows.append(row)
    return rows


async def _database(studio: Studio) -> tuple[dict[str, Any], str | None]:
    try:
        async with studio.db() as conn:
            cur = await conn.execute(
                "select pg_database_size(current_database()) as size, current_database() as name,"
                " (select count(*) from pg_stat_activity where datname = current_database()) as connections,"
                " split_part(version(), ' ', 2) as version")
            return await cur.fetchone() or {}, None
    except errors.AppKitError as exc:
        return {}, str(exc)


async def overview(request: Request) -> Response:
    studio = studio_of(request)
    client = studio.http
    (services, problem), metrics, (db, db_problem) = await asyncio.gather(
        _health(client, studio), _metrics(client, studio), _database(studio))
    problem = problem or db_problem
    rates: list[dict[str, Any]] = []
    errors_by_class: list[dict[str, Any]] = []
    if metrics is not None:
        sample, _ = metrics
        previous = request.app.state.__dict__.get("overview_sample")
        rates = _rates(previous, sample)
        request.app.state.overview_sample = sample
        errors_by_class = [{"service": s or "other", "class": c, "count": int(v)}
                           for (s, c), v in sorted(sample.errors.items()) if v]
    advisors = studio.advisors.last
    return render(request, "overview.html", {
        "services": services, "problem": problem, "rates": rates, "errors_by_class": errors_by_class,
        "metrics_available": metrics is not None, "db": db,
        "advisor_count": None if advisors is None else advisors.count(),
        "advisor_total": None if advisors is None else len(advisors.findings),
    }, active="overview")


PAGE = Page(name="overview", title="Overview", path="/", order=0, routes=[Route("/", overview)])
