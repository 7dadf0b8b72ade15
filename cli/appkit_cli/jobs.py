"""``appkit jobs``: enqueue, inspect, retry, cancel and purge jobs, cron schedules, and ``work`` to run a worker."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from appkit.local import read_info, resolve_workdir
from appkit_cli._common import DbUrlOption, WorkdirOption, console, err_console, fail, handle_errors

if TYPE_CHECKING:
    from appkit import AppKit
    from appkit.jobs import Job, QueueStats, Schedule

jobs_app = typer.Typer(help="Background jobs: enqueue, list, show, retry, cancel, purge, stats, work, schedules.",
                       no_args_is_help=True)
schedules_app = typer.Typer(help="Cron schedules that enqueue a job per firing.", no_args_is_help=True)
jobs_app.add_typer(schedules_app, name="schedules")


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]


def _app(workdir: Path | None) -> AppKit:
    """A client for the service role: the running local stack's, or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY."""
    from appkit import AppKit

    url, key = os.environ.get("SUPABASE_URL"), os.environ.get("SUPABASE_SERVICE_ROLE_KEY")
    if workdir is None and url and key:
        return AppKit(url=url, anon_key=os.environ.get("SUPABASE_ANON_KEY") or key, service_role_key=key)
    paths = resolve_workdir(workdir)
    info = read_info(paths)
    if info is None:
        raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start`, "
                   "or set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
    return AppKit(url=info.api_url, anon_key=info.anon_key, service_role_key=info.service_role_key)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _print_jobs(jobs: list[Job], output: Output) -> None:
    if output is Output.json:
        console.print_json(json.dumps([j.model_dump(mode="json") for j in jobs]))
        return
    table = Table("id", "queue", "status", "attempts", "priority", "run at", "finished", "last error")
    colour = {"queued": "cyan", "running": "yellow", "succeeded": "green", "failed": "magenta", "dead": "bold red",
              "cancelled": "dim"}
    for j in jobs:
        error = (j.last_error or "").splitlines()[0][:60] if j.last_error else ""
        table.add_row(str(j.id), j.queue, f"[{colour[j.status.value]}]{j.status.value}[/]",
                      f"{j.attempts}/{j.max_attempts}", str(j.priority), _when(j.run_at), _when(j.finished_at),
                      error)
    console.print(table)


def _payload(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise fail(f"the payload is not valid JSON: {exc}") from None
    if not isinstance(value, (dict, list)):
        raise fail("the payload must be a JSON object or array")
    return value


@jobs_app.command("enqueue")
@handle_errors
def enqueue(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    payload: Annotated[str, typer.Argument(help="JSON payload (object or array).")] = "{}",
    delay: Annotated[str | None, typer.Option(help="Run after this long, e.g. 30s, 15m, 2h.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int, typer.Option(help="Attempts before the job is dead.")] = 5,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key (unique among unfinished jobs).")] = None,
    workdir: WorkdirOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Enqueue one job."""
    from appkit.jobs.models import parse_duration

    data = _payload(payload)
    wait = parse_duration(delay) if delay is not None else None
    with _app(workdir) as app:
        job = app.admin.jobs.enqueue(queue, data, delay=wait, priority=priority, max_attempts=max_attempts,
                                     idempotency_key=key)
    if output is Output.json:
        console.print_json(json.dumps(job.model_dump(mode="json")))
    else:
        console.print(f"Enqueued job [bold]{job.id}[/] on {job.queue} ({job.status.value}).")


@jobs_app.command("list")
@handle_errors
def list_jobs(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, dead or cancelled.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 50,
    before: Annotated[int | None, typer.Option(help="Only jobs with a smaller id (paging).")] = None,
    workdir: WorkdirOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List jobs, newest first."""
    with _app(workdir) as app:
        jobs = app.admin.jobs.list(queue=queue, status=status, limit=limit, before=before)
    _print_jobs(jobs, output)


@jobs_app.command("show")
@handle_errors
def show(job_id: Annotated[int, typer.Argument(help="Job id.")], workdir: WorkdirOption = None,
         output: OutputOption = Output.table) -> None:
    """Show one job, with its payload and full last error."""
    with _app(workdir) as app:
        job = app.admin.jobs.get(job_id)
    if output is Output.json:
        console.print_json(json.dumps(job.model_dump(mode="json")))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    for name, value in job.model_dump(mode="json").items():
        if name in ("payload", "last_error"):
            continue
        table.add_row(name, "" if value is None else str(value))
    table.add_row("payload", json.dumps(job.payload))
    console.print(table)
    if job.last_error:
        console.print("[bold cyan]last error[/]")
        console.print(job.last_error, markup=False, highlight=False)


@jobs_app.command("retry")
@handle_errors
def retry(job_id: Annotated[int, typer.Argument(help="Job id.")], workdir: WorkdirOption = None) -> None:
    """Run a dead, cancelled or failed job again now (attempts reset)."""
    with _app(workdir) as app:
        job = app.admin.jobs.retry(job_id)
    console.print(f"Job [bold]{job.id}[/] is queued again.")


@jobs_app.command("cancel")
@handle_errors
def cancel(job_id: Annotated[int, typer.Argument(help="Job id.")], workdir: WorkdirOption = None) -> None:
    """Cancel a job that has not started."""
    with _app(workdir) as app:
        job = app.admin.jobs.cancel(job_id)
    console.print(f"Job [bold]{job.id}[/] is cancelled.")


@jobs_app.command("purge")
@handle_errors
def purge(
    older_than: Annotated[str | None, typer.Option(help="Finished more than this long ago (default: each "
                                                        "queue's retention), e.g. 1h, 7d.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows deleted per statement.")] = 10_000,
    workdir: WorkdirOption = None,
) -> None:
    """Delete finished jobs (succeeded, dead, cancelled) past their retention, in batches."""
    from appkit.jobs.models import parse_duration

    age = parse_duration(older_than) if older_than is not None else None
    with _app(workdir) as app:
        count = app.admin.jobs.purge(older_than=age, batch_size=batch_size)
    console.print(f"Purged {count} finished job(s).")


def _stats_table(stats: list[QueueStats]) -> Table:
    table = Table("queue", "queued", "running", "failed", "succeeded", "dead", "cancelled", "oldest ready")
    for s in stats:
        age = "" if s.oldest_ready_seconds is None else f"{s.oldest_ready_seconds:.1f} s"
        table.add_row(s.queue, str(s.queued), str(s.running), str(s.failed), str(s.succeeded), str(s.dead),
                      str(s.cancelled), age)
    return table


@jobs_app.command("stats")
@handle_errors
def stats(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.", min=0.2)] = 2.0,
    workdir: WorkdirOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Jobs per queue and status."""
    with _app(workdir) as app:
        if not watch:
            rows = app.admin.jobs.stats(queue)
            if output is Output.json:
                console.print_json(json.dumps([s.model_dump(mode="json") for s in rows]))
            else:
                console.print(_stats_table(rows))
            return
        if output is Output.json:
            raise fail("--watch prints a live table; use -o json without --watch")
        from rich.live import Live

        try:
            with Live(_stats_table(app.admin.jobs.stats(queue)), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(_stats_table(app.admin.jobs.stats(queue)), refresh=True)
        except KeyboardInterrupt:
            return


class _JsonLines(logging.Formatter):
    """One JSON object per record, with the worker's per-job fields (job_id, queue, attempt, status, ...)."""

    FIELDS = ("job_id", "queue", "attempt", "status", "duration_ms", "error", "worker", "schedule", "purged")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        for name in self.FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        return json.dumps(data, default=str)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@jobs_app.command("work")
@handle_errors
def work(
    target: Annotated[str, typer.Argument(help="The Worker to run, as module:attribute (e.g. myapp.jobs:worker).")],
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q", help="Only these queues (repeatable).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once (default: the worker's).", min=1)] = None,
    db_url: DbUrlOption = None,
    workdir: WorkdirOption = None,
    transaction_pooler: Annotated[bool, typer.Option(
        "--transaction-pooler", help="The URL goes through a pooler in transaction mode: poll, no LISTEN.")] = False,
    log_format: Annotated[LogFormat, typer.Option(help="Log lines as text or JSON.")] = LogFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log job starts too.")] = False,
) -> None:
    """Run a worker until SIGTERM/SIGINT (in-flight jobs finish within its shutdown grace)."""
    from appkit.jobs import Worker

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise fail(f"expected module:attribute, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"cannot import {module_name}: {exc}") from None
    worker = getattr(module, attr, None)
    if not isinstance(worker, Worker):
        raise fail(f"{target} is not an appkit.jobs.Worker")
    if transaction_pooler:
        worker.transaction_pooler = True
    if concurrency is not None:
        worker.concurrency = concurrency
        worker.batch_size = concurrency
    if worker.db_url is None:
        if db_url:
            worker.db_url = db_url
        else:
            paths = resolve_workdir(workdir)
            info = read_info(paths)
            if info is None:
                raise fail(f"no database: pass --db-url, set SUPABASE_DB_URL, or run `appkit start` in {paths.workdir}")
            worker.db_url = info.db_url
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines() if log_format is LogFormat.json
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    logging.getLogger("psycopg").setLevel(logging.WARNING)
    worker.run(queue or None)
    logging.shutdown()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        err_console.print("sync handlers still running after the grace period were released; exiting")
        os._exit(0)


# -- schedules ------------------------------------------------------------------------------------

def _print_schedules(items: list[Schedule], output: Output) -> None:
    if output is Output.json:
        console.print_json(json.dumps([s.model_dump(mode="json") for s in items]))
        return
    table = Table("name", "cron", "time zone", "queue", "enabled", "next run", "last run", "payload")
    for s in items:
        table.add_row(s.name, s.cron, s.timezone, s.queue, "yes" if s.enabled else "no", _when(s.next_run_at),
                      _when(s.last_run_at), json.dumps(s.payload)[:60])
    console.print(table)


@schedules_app.command("list")
@handle_errors
def schedules_list(workdir: WorkdirOption = None, output: OutputOption = Output.table) -> None:
    """List cron schedules."""
    with _app(workdir) as app:
        items = app.admin.jobs.schedules()
    _print_schedules(items, output)


@schedules_app.command("add")
@handle_errors
def schedules_add(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    cron: Annotated[str, typer.Argument(help="Five-field cron expression, e.g. '0 3 * * *' (or @daily).")],
    queue: Annotated[str, typer.Option("--queue", "-q", help="Queue the jobs go to.")],
    payload: Annotated[str, typer.Option(help="JSON payload of each job.")] = "{}",
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the expression is read in.")] = "UTC",
    priority: Annotated[int, typer.Option(help="Priority of each job.")] = 0,
    max_attempts: Annotated[int, typer.Option(help="Attempts of each job.")] = 5,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a schedule of that name.")] = False,
    workdir: WorkdirOption = None,
) -> None:
    """Add (or with --replace, overwrite) a cron schedule."""
    data = _payload(payload)
    with _app(workdir) as app:
        s = app.admin.jobs.add_schedule(name, cron, queue, data, timezone=tz, priority=priority,
                                        max_attempts=max_attempts, replace=replace)
    console.print(f"Schedule [bold]{s.name}[/] ({s.cron}, {s.timezone}) next fires at {_when(s.next_run_at)}.")


@schedules_app.command("remove")
@handle_errors
def schedules_remove(name: Annotated[str, typer.Argument(help="Schedule name.")],
                     workdir: WorkdirOption = None) -> None:
    """Delete a cron schedule."""
    with _app(workdir) as app:
        app.admin.jobs.remove_schedule(name)
    console.print(f"Removed schedule [bold]{name}[/].")
