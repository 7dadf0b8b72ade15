"""Jobs service over PostgREST (RPC and tables in schema ``appkit``), scoped to the facade's caller.

``app.admin.jobs`` acts as the service role; ``app.as_user(s).jobs`` can enqueue to and read
the queues a project's policies open to users (docs/jobs.md). Running jobs is the worker's
job (``appkit.jobs.Worker``, a direct Postgres connection).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from postgrest import AsyncPostgrestClient

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.jobs.cron import Cron, zone
from appkit.jobs.models import (
    MAX_ATTEMPTS_RANGE,
    PRIORITY_RANGE,
    Job,
    JobStatus,
    QueueStats,
    Schedule,
    check_int,
    check_name,
    check_when,
    payload_json,
)

SCHEMA = "appkit"
MAX_ENQUEUE_MANY = 100_000


def _check_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 1 <= job_id < 2**63:
        raise errors.ValidationError(f"a job id is a positive integer, got {job_id!r}", code="invalid_job_id")
    return job_id


def _one(data: Any, what: str) -> dict[str, Any]:
    row = data[0] if isinstance(data, list) and data else data
    if not isinstance(row, dict) or (row.get("id") is None and row.get("name") is None):
        raise errors.NotFound(f"{what} not found", code="not_found")
    return row


def _interval(value: timedelta) -> str:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise errors.ValidationError(f"expected a non-negative timedelta, got {value!r}", code="invalid_interval")
    return f"{value.total_seconds()} seconds"


class AsyncJobs:
    """Enqueue, inspect, cancel and retry jobs; queue settings and cron schedules."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope

    async def _rest(self) -> AsyncPostgrestClient:
        return await self._scope.rest(SCHEMA)

    async def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        return await self._scope.rpc(SCHEMA, function, params)

    async def enqueue(self, queue: str, payload: Any, *, run_at: datetime | None = None,
                      delay: timedelta | float | None = None, priority: int = 0, max_attempts: int = 5,
                      idempotency_key: str | None = None) -> Job:
        """Add a job (a pydantic model, dict or list payload); returns it.

        ``run_at`` (aware) or ``delay`` postpone it; with an ``idempotency_key`` that an
        unfinished job of the queue already has, that job is returned instead.
        """
        params: dict[str, Any] = {
            "queue": check_name(queue), "payload": payload_json(payload),
            "priority": check_int(priority, "priority", PRIORITY_RANGE),
            "max_attempts": check_int(max_attempts, "max_attempts", MAX_ATTEMPTS_RANGE),
            "run_at": check_when(run_at, delay),
        }
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 200:
                raise errors.ValidationError("idempotency_key must be a string of 1-200 characters",
                                             code="invalid_idempotency_key")
            params["idempotency_key"] = idempotency_key
        data = await self._rpc("enqueue", params)
        return Job.model_validate(_one(data, "the enqueued job"))

    async def enqueue_many(self, queue: str, payloads: Iterable[Any], *, run_at: datetime | None = None,
                           delay: timedelta | float | None = None, priority: int = 0,
                           max_attempts: int = 5) -> builtins.list[int]:
        """Add one job per payload in one statement (one HTTP request); returns their ids in order."""
        check_name(queue)
        if isinstance(payloads, (str, bytes, dict)):
            raise errors.ValidationError("payloads must be a list of payloads", code="invalid_payload")
        items = [payload_json(p) for p in payloads]
        if len(items) > MAX_ENQUEUE_MANY:
            raise errors.ValidationError(f"at most {MAX_ENQUEUE_MANY} payloads per call", code="invalid_payload")
        if not items:
            return []
        data = await self._rpc("enqueue_many", {
            "queue": queue, "payloads": items, "run_at": check_when(run_at, delay),
            "priority": check_int(priority, "priority", PRIORITY_RANGE),
            "max_attempts": check_int(max_attempts, "max_attempts", MAX_ATTEMPTS_RANGE),
        })
        if not isinstance(data, list):
            raise errors.UnexpectedResponse("enqueue_many did not return a list of ids", code="unexpected_response")
        return [int(x) for x in data]

    async def get(self, job_id: int) -> Job:
        """One job by id (``NotFound`` if it does not exist or the caller may not see it)."""
        client = await self._rest()
        with boundary():
            response = await client.from_("jobs").select("*").eq("id", _check_id(job_id)).limit(1).execute()
        return Job.model_validate(_one(response.data, f"job {job_id}"))

    async def list(self, *, queue: str | None = None, status: JobStatus | str | None = None,
                   limit: int = 100, before: int | None = None) -> builtins.list[Job]:
        """Newest first; ``before`` (a job id) pages backwards."""
        client = await self._rest()
        builder = client.from_("jobs").select("*")
        if queue is not None:
            builder = builder.eq("queue", check_name(queue))
        if status is not None:
            try:
                builder = builder.eq("status", JobStatus(status).value)
            except ValueError:
                raise errors.ValidationError(
                    f"unknown job status {status!r} (one of {', '.join(s.value for s in JobStatus)})",
                    code="invalid_status") from None
        if before is not None:
            builder = builder.lt("id", _check_id(before))
        check_int(limit, "limit", (1, 10_000))
        with boundary():
            response = await builder.order("id", desc=True).limit(limit).execute()
        return [Job.model_validate(r) for r in response.data]

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job that has not started (``Conflict`` if it is running or finished)."""
        return Job.model_validate(_one(await self._rpc("cancel_job", {"job_id": _check_id(job_id)}), "job"))

    async def retry(self, job_id: int) -> Job:
        """Run a dead, cancelled or failed job again now, attempts reset (``Conflict`` otherwise)."""
        return Job.model_validate(_one(await self._rpc("retry_job", {"job_id": _check_id(job_id)}), "job"))

    async def stats(self, queue: str | None = None) -> builtins.list[QueueStats]:
        """Counts per queue and status (of the jobs the caller can see)."""
        params = {"only_queue": check_name(queue)} if queue is not None else {}
        data = await self._rpc("job_stats", params)
        return [QueueStats.model_validate(r) for r in data or []]

    async def purge(self, *, older_than: timedelta | None = None, batch_size: int = 10_000) -> int:
        """Delete finished jobs past their queue's retention (or ``older_than``), in batches; returns the count."""
        check_int(batch_size, "batch_size", (1, 1_000_000))
        params: dict[str, Any] = {"batch_size": batch_size}
        if older_than is not None:
            params["older_than"] = _interval(older_than)
        total = 0
        while True:
            deleted = int(await self._rpc("purge_jobs", params) or 0)
            total += deleted
            if deleted < batch_size:
                return total

    async def configure_queue(self, queue: str, *, concurrency: int | None = None,
                              retention: timedelta | None = None) -> None:
        """Set a queue's concurrency limit across all workers (None: unlimited) and its retention."""
        row: dict[str, Any] = {"name": check_name(queue), "concurrency": None}
        if concurrency is not None:
            row["concurrency"] = check_int(concurrency, "concurrency", (1, 1_000_000))
        if retention is not None:
            row["retention"] = _interval(retention)
        client = await self._rest()
        with boundary():
            await client.from_("job_queues").upsert(row, on_conflict="name").execute()

    # -- schedules ---------------------------------------------------------------------------

    async def schedules(self) -> builtins.list[Schedule]:
        client = await self._rest()
        with boundary():
            response = await client.from_("job_schedules").select("*").order("name").execute()
        return [Schedule.model_validate(r) for r in response.data]

    async def add_schedule(self, name: str, cron: str, queue: str, payload: Any = None, *, timezone: str = "UTC",
                           priority: int = 0, max_attempts: int = 5, replace: bool = False) -> Schedule:
        """Enqueue a job on ``queue`` at every firing of ``cron`` (5 fields) in ``timezone``.

        ``Conflict`` if a schedule of that name exists, unless ``replace``.
        """
        parsed = Cron.parse(cron)
        first = parsed.next_after(datetime.now(UTC), zone(timezone))
        row = {
            "name": check_name(name, "schedule"), "cron": parsed.expression, "timezone": timezone,
            "queue": check_name(queue), "payload": payload_json({} if payload is None else payload),
            "priority": check_int(priority, "priority", PRIORITY_RANGE),
            "max_attempts": check_int(max_attempts, "max_attempts", MAX_ATTEMPTS_RANGE),
            "enabled": True, "next_run_at": first.isoformat(),
        }
        client = await self._rest()
        table = client.from_("job_schedules")
        builder = table.upsert(row, on_conflict="name") if replace else table.insert(row)
        with boundary():
            response = await builder.execute()
        return Schedule.model_validate(_one(response.data, f"schedule {name}"))

    async def remove_schedule(self, name: str) -> None:
        """Delete a schedule (``NotFound`` if there is none of that name)."""
        client = await self._rest()
        with boundary():
            response = await client.from_("job_schedules").delete().eq("name", check_name(name, "schedule")).execute()
        if not response.data:
            raise errors.NotFound(f"schedule {name} not found", code="not_found")

