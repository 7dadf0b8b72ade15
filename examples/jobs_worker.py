"""A jobs worker to copy: typed payloads, an async and a sync handler, retries, a schedule's queue.

    appkit jobs work examples.jobs_worker:worker            # against the running local stack
    SUPABASE_DB_URL=postgresql://... python examples/jobs_worker.py

Enqueue from anywhere: ``appkit jobs enqueue emails '{"to": "ada@example.com", "name": "Ada"}'``,
``app.admin.jobs.enqueue("emails", WelcomeEmail(...))`` or ``select appkit.enqueue('emails', ...)``.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from appkit.jobs import JobContext, Worker

log = logging.getLogger("examples.jobs")

worker = Worker(concurrency=20, shutdown_grace=30)


class WelcomeEmail(BaseModel):
    to: str
    name: str


class Thumbnail(BaseModel):
    bucket: str
    path: str
    width: int = 256


@worker.job("emails", max_attempts=5, backoff=2.0)
async def send_welcome(email: WelcomeEmail, ctx: JobContext) -> None:
    """Raise to retry (after 1-2 s, 2-4 s, ... with jitter); dead after 5 attempts, with the error."""
    log.info("welcome e-mail to %s (job %d, attempt %d)", email.to, ctx.id, ctx.attempt)
    # await mailer.send(to=email.to, subject=f"Welcome, {email.name}") -- your provider here


@worker.job("thumbnails", max_attempts=3)
def make_thumbnail(job: Thumbnail) -> None:
    """Sync handlers run in a thread pool (one thread per concurrent job)."""
    log.info("thumbnail of %s/%s at %d px", job.bucket, job.path, job.width)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    worker.run()
