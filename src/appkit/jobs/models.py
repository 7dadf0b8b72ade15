"""Jobs' value types (a job, its status, queue statistics, a schedule) and the checks on user input."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from appkit.errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
PRIORITY_RANGE = (-32768, 32767)
MAX_ATTEMPTS_RANGE = (1, 1000)


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> succeeded | failed (waiting to retry) | dead | cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    dead = "dead"
    cancelled = "cancelled"


class Job(BaseModel):
    """A row of ``appkit.jobs``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    queue: str
    payload: Any
    status: JobStatus
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    idempotency_key: str | None = None
    last_error: str | None = None
    lease_until: datetime | None = None
    worker_id: str | None = None
    created_by: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class QueueStats(BaseModel):
    """Counts of one queue's jobs per status, and how long its oldest ready job has waited."""

    model_config = ConfigDict(frozen=True)

    queue: str
    queued: int
    running: int
    failed: int
    succeeded: int
    dead: int
    cancelled: int
    oldest_ready_seconds: float | None = None


class Schedule(BaseModel):
    """A row of ``appkit.job_schedules``: a cron expression that enqueues a job per firing."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    cron: str
    timezone: str
    queue: str
    payload: Any
    priority: int
    max_attempts: int
    enabled: bool
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None


def check_name(value: object, what: str = "queue") -> str:
    """A queue or schedule name: 1-100 of ``A-Z a-z 0-9 _ . : -``."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValidationError(f"invalid {what} name {value!r}: use 1-100 of A-Z a-z 0-9 _ . : -",
                              code=f"invalid_{what}")
    return value


def check_int(value: object, what: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ValidationError(f"{what} must be an integer in {bounds[0]}..{bounds[1]}, got {value!r}",
                              code=f"invalid_{what}")
    return value


def payload_json(payload: object) -> Any:
    """A payload (pydantic model, dict or list) as JSON-ready data; ``ValidationError`` otherwise."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    if not isinstance(payload, (dict, list)):
        raise ValidationError(f"a job payload is a pydantic model, dict or list, not {type(payload).__name__}",
                              code="invalid_payload")
    try:
        return json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the job payload is not JSON: {exc}", code="invalid_payload") from None


def check_when(run_at: datetime | None, delay: timedelta | float | None) -> str | None:
    """``run_at`` / ``delay`` as an ISO timestamp for ``enqueue`` (None: now)."""
    if run_at is not None and delay is not None:
        raise ValidationError("give run_at or delay, not both", code="invalid_run_at")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 10 * 365 * 86400:
            raise ValidationError(f"delay must be 0 or more seconds, got {delay!r}", code="invalid_delay")
        from datetime import UTC

        return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    if run_at is None:
        return None
    if not isinstance(run_at, datetime) or run_at.tzinfo is None:
        raise ValidationError("run_at must be a timezone-aware datetime", code="invalid_run_at")
    return run_at.isoformat()


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` (or a bare number of seconds) as a timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not m:
        raise ValidationError(f"invalid duration {text!r}: use e.g. 30s, 15m, 2h, 7d", code="invalid_duration")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    seconds = float(m.group(1)) * unit
    if seconds > 100 * 365 * 86400:
        raise ValidationError(f"duration {text!r} is too long", code="invalid_duration")
    return timedelta(seconds=seconds)
