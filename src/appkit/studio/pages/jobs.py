"""The Jobs page: queues with counts by status, live throughput, a queue's jobs, one job, retry/cancel/purge,
schedules. Everything goes through ``app.admin.jobs`` except throughput, a direct read as the CLI's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.db.queries import load_queries
from appkit.jobs import JobStatus
from appkit.jobs.models import check_name
from appkit.studio.app import studio_of
from appkit.studio.pages import Page
from appkit.studio.pages import _forms as f
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect

PAGE_SIZE = 50
STATUSES = [s.value for s in JobStatus]


def _queries() -> dict[str, Any]:
    return load_queries("appkit.studio.pages", "jobs.sql")


async def _throughput(request: Request) -> list[dict[str, Any]]:
    async with studio_of(request).db() as conn:
        cur = await conn.execute(_queries()["throughput"])
        return list(await cur.fetchall())


def _queue(request: Request) -> str:
    name = str(request.path_params["queue"])
    check_name(name)  # ValidationError: a 400 page
    return name


async def index(request: Request) -> Response:
    admin = studio_of(request).admin
    stats = await admin.jobs.stats()
    schedules = await admin.jobs.schedules()
    return render(request, "jobs.html", {"stats": stats, "schedules": schedules,
                                         "throughput": await _throughput(request)}, active="jobs")


async def throughput(request: Request) -> Response:
    """The live-throughput fragment that the Jobs page's htmx polls (a whole page without htmx)."""
    rows = await _throughput(request)
    if request.headers.get("hx-request") == "true":
        return render(request, "jobs_throughput.html", {"throughput": rows})
    return redirect("/jobs")


async def queue(request: Request) -> Response:
    name = _queue(request)
    status = f.text(request.query_params, "status", max_len=20) or None
    if status is not None and status not in STATUSES:
        return render(request, "error.html", {"status": 400, "title": "Bad request",
                                              "message": f"unknown status {status!r}"}, status=400)
    before = f.integer(request.query_params, "before")
    admin = studio_of(request).admin
    jobs = await admin.jobs.list(queue=name, status=status, before=before, limit=PAGE_SIZE + 1)
    more = len(jobs) > PAGE_SIZE
    jobs = jobs[:PAGE_SIZE]
    stats = await admin.jobs.stats(name)
    return render(request, "jobs_queue.html", {
        "queue": name, "jobs": jobs, "status": status or "", "statuses": STATUSES,
        "stats": stats[0] if stats else None, "next_before": jobs[-1].id if more and jobs else None,
    }, active="jobs")


async def job(request: Request) -> Response:
    name = _queue(request)
    job_id = int(request.path_params["id"])  # the SDK refuses 0 and ids past bigint (400)
    item = await studio_of(request).admin.jobs.get(job_id)
    if item.queue != name:
        return redirect(f"/jobs/{item.queue}/{item.id}")
    return render(request, "jobs_job.html", {"job": item}, active="jobs")


@csrf_protect
async def retry(request: Request) -> Response:
    name = _queue(request)
    job_id = int(request.path_params["id"])  # the SDK refuses 0 and ids past bigint (400)
    item = await studio_of(request).admin.jobs.retry(job_id)
    return redirect(f"/jobs/{name}/{item.id}", f"Job {item.id} queued again.")


@csrf_protect
async def cancel(request: Request) -> Response:
    name = _queue(request)
    job_id = int(request.path_params["id"])  # the SDK refuses 0 and ids past bigint (400)
    item = await studio_of(request).admin.jobs.cancel(job_id)
    return redirect(f"/jobs/{name}/{item.id}", f"Job {item.id} cancelled.")


@csrf_protect
async def purge(request: Request) -> Response:
    form = await request.form()
    days = f.integer(form, "older_than_days", default=None, lo=0, hi=3650)
    older = timedelta(days=days) if days is not None else None
    count = await studio_of(request).admin.jobs.purge(older_than=older)
    return redirect("/jobs", f"Purged {count} finished job(s).")


@csrf_protect
async def add_schedule(request: Request) -> Response:
    form = await request.form()
    payload = f.json_object(form, "payload", default={})
    schedule = await studio_of(request).admin.jobs.add_schedule(
        f.text(form, "name", required=True, max_len=100), f.text(form, "cron", required=True, max_len=200),
        f.text(form, "queue", required=True, max_len=100), payload,
        timezone=f.text(form, "timezone", max_len=100) or "UTC", replace=f.checkbox(form, "replace"))
    return redirect("/jobs", f"Schedule {schedule.name} saved.")


@csrf_protect
async def remove_schedule(request: Request) -> Response:
    name = str(request.path_params["name"])
    await studio_of(request).admin.jobs.remove_schedule(name)
    return redirect("/jobs", f"Schedule {name} removed.")


PAGE = Page(name="jobs", title="Jobs", path="/jobs", order=60, routes=[
    Route("/jobs", index),
    Route("/jobs/-/throughput", throughput),
    Route("/jobs/-/purge", purge, methods=["POST"]),
    Route("/jobs/-/schedules", add_schedule, methods=["POST"]),
    Route("/jobs/-/schedules/{name}/delete", remove_schedule, methods=["POST"]),
    Route("/jobs/{queue}", queue),
    Route("/jobs/{queue}/{id:int}", job),
    Route("/jobs/{queue}/{id:int}/retry", retry, methods=["POST"]),
    Route("/jobs/{queue}/{id:int}/cancel", cancel, methods=["POST"]),
])
