"""Background jobs on Postgres: the worker, cron schedules and the job types the SDK returns.

Enqueue with ``app.admin.jobs.enqueue(...)`` (or ``appkit.enqueue(...)`` in SQL); run handlers
with ``Worker``. See docs/jobs.md.
"""

from __future__ import annotations

from appkit.jobs.cron import Cron
from appkit.jobs.handler import Handler, JobContext
from appkit.jobs.models import Job, JobStatus, QueueStats, Schedule
from appkit.jobs.worker import Worker

__all__ = ["Cron", "Handler", "Job", "JobContext", "JobStatus", "QueueStats", "Schedule", "Worker"]
