"""The jobs SDK (``app.admin.jobs``, ``app.as_user(s).jobs``) over the stack's REST API: enqueue,
enqueue_many, get/list, cancel/retry, stats, purge, queue settings, schedules, bad input, the RLS
matrix (default and with docs/jobs.md's user-queue pattern), and ``supabase db advisors``."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from appkit import AppKit, errors
from appkit.jobs import Job, JobStatus
from tests.jobs_support import job_rows, qname
from tests.sdk_support import app, make_async_app, require, signed_up
from tests.support import StackHandle

__all__ = ["app"]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _rest(stack: StackHandle) -> None:
    require(stack, "rest", "auth")


class Export(BaseModel):
    report: str
    rows: int = 0


def test_admin_enqueue_get_list_cancel_retry(app: AppKit, stack: StackHandle) -> None:
    jobs = app.admin.jobs
    q = qname("sdk")
    job = jobs.enqueue(q, Export(report="sales", rows=3), priority=5, max_attempts=3)
    assert isinstance(job, Job) and job.status is JobStatus.queued and job.payload == {"report": "sales", "rows": 3}
    assert job.priority == 5 and job.max_attempts == 3 and job.created_by is None
    later = jobs.enqueue(q, {"report": "later"}, delay=3600)
    assert later.run_at > datetime.now(UTC) + timedelta(minutes=59)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert jobs.enqueue(q, [1, 2], run_at=at).run_at == at
    same = jobs.enqueue(q, {"report": "once"}, idempotency_key="k")
    assert jobs.enqueue(q, {"report": "twice"}, idempotency_key="k").id == same.id
    assert jobs.get(job.id) == job
    listed = jobs.list(queue=q)
    assert [j.id for j in listed] == sorted([j.id for j in listed], reverse=True) and len(listed) == 4
    assert [j.id for j in jobs.list(queue=q, limit=2, before=listed[1].id)] == [j.id for j in listed[2:]]
    cancelled = jobs.cancel(later.id)
    assert cancelled.status is JobStatus.cancelled and cancelled.finished_at is not None
    assert [j.id for j in jobs.list(queue=q, status="cancelled")] == [later.id]
    with pytest.raises(errors.Conflict):
        jobs.cancel(later.id)
    again = jobs.retry(later.id)
    assert again.status is JobStatus.queued and again.attempts == 0
    with pytest.raises(errors.Conflict, match="only dead, cancelled or failed"):
        jobs.retry(job.id)
    with pytest.raises(errors.NotFound):
        jobs.get(2**62)
    with pytest.raises(errors.NotFound):
        jobs.cancel(2**62)
    with pytest.raises(errors.NotFound):
        jobs.retry(2**62)
    (stats,) = jobs.stats(q)
    assert (stats.queue, stats.queued, stats.running, stats.dead) == (q, 4, 0, 0)
    assert q in {s.queue for s in jobs.stats()}


def test_enqueue_many_thousands_in_one_call(app: AppKit, stack: StackHandle) -> None:
    q = qname("many")
    ids = app.admin.jobs.enqueue_many(q, [{"i": i} for i in range(5000)], priority=1)
    assert len(ids) == 5000 and ids == sorted(ids)
    rows = job_rows(stack.db_url, q)
    assert [r["payload"]["i"] for r in rows] == list(range(5000)) and {r["priority"] for r in rows} == {1}
    assert app.admin.jobs.enqueue_many(q, []) == []
    assert app.admin.jobs.enqueue_many(q, (Export(report=str(i)) for i in range(3))) == [ids[-1] + 1, ids[-1] + 2,
                                                                                         ids[-1] + 3]


def test_purge_and_queue_settings(app: AppKit, stack: StackHandle) -> None:
    q = qname("ret")
    jobs = app.admin.jobs
    ids = jobs.enqueue_many(q, [{"i": i} for i in range(30)])
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.jobs set status = 'succeeded', finished_at = now() - interval '2 days' "
                     "where id = any(%s)", (ids[:25],))
    jobs.configure_queue(q, concurrency=3, retention=timedelta(days=1))
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select concurrency, retention from appkit.job_queues where name = %s",
                            (q,)).fetchone() == (3, timedelta(days=1))
    assert jobs.purge(batch_size=7) >= 25
    assert len(job_rows(stack.db_url, q)) == 5
    jobs.configure_queue(q)  # back to unlimited
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select concurrency from appkit.job_queues where name = %s", (q,)).fetchone() == (None,)
    assert jobs.purge(older_than=timedelta(0)) >= 0


def test_schedules_add_list_remove(app: AppKit, stack: StackHandle) -> None:
    jobs = app.admin.jobs
    name = qname("nightly")
    s = jobs.add_schedule(name, "0 3 * * *", "reports", {"kind": "nightly"}, timezone="Europe/Paris")
    assert s.next_run_at is not None and s.next_run_at > datetime.now(UTC)
    assert s.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 3
    assert name in [x.name for x in jobs.schedules()]
    with pytest.raises(errors.Conflict):
        jobs.add_schedule(name, "0 4 * * *", "reports")
    replaced = jobs.add_schedule(name, "*/10 * * * *", "reports", replace=True)
    assert replaced.cron == "*/10 * * * *"
    jobs.remove_schedule(name)
    with pytest.raises(errors.NotFound):
        jobs.remove_schedule(name)
    assert name not in [x.name for x in jobs.schedules()]


BAD_CALLS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("queue name", lambda j: j.enqueue("bad queue!", {}), "invalid_queue"),
    ("empty queue", lambda j: j.enqueue("", {}), "invalid_queue"),
    ("payload type", lambda j: j.enqueue("q", "text"), "invalid_payload"),
    ("payload not JSON", lambda j: j.enqueue("q", {"x": object()}), "invalid_payload"),
    ("payload NaN", lambda j: j.enqueue("q", {"x": float("nan")}), "invalid_payload"),
    ("priority", lambda j: j.enqueue("q", {}, priority=10**6), "invalid_priority"),
    ("priority bool", lambda j: j.enqueue("q", {}, priority=True), "invalid_priority"),
    ("max_attempts", lambda j: j.enqueue("q", {}, max_attempts=0), "invalid_max_attempts"),
    ("naive run_at", lambda j: j.enqueue("q", {}, run_at=datetime(2030, 1, 1)), "invalid_run_at"),
    ("run_at and delay", lambda j: j.enqueue("q", {}, run_at=datetime.now(UTC), delay=1), "invalid_run_at"),
    ("negative delay", lambda j: j.enqueue("q", {}, delay=-1), "invalid_delay"),
    ("idempotency key", lambda j: j.enqueue("q", {}, idempotency_key=""), "invalid_idempotency_key"),
    ("many: not a list", lambda j: j.enqueue_many("q", {"a": 1}), "invalid_payload"),
    ("many: bad item", lambda j: j.enqueue_many("q", [{}, 3]), "invalid_payload"),
    ("job id", lambda j: j.get(0), "invalid_job_id"),
    ("job id type", lambda j: j.cancel("7"), "invalid_job_id"),
    ("status", lambda j: j.list(status="sleeping"), "invalid_status"),
    ("limit", lambda j: j.list(limit=0), "invalid_limit"),
    ("cron", lambda j: j.add_schedule("s", "61 * * * *", "q"), "invalid_cron"),
    ("cron fields", lambda j: j.add_schedule("s", "* * *", "q"), "invalid_cron"),
    ("time zone", lambda j: j.add_schedule("s", "* * * * *", "q", timezone="Mars/Base"), "invalid_timezone"),
    ("schedule name", lambda j: j.add_schedule("bad name", "* * * * *", "q"), "invalid_schedule"),
    ("retention", lambda j: j.configure_queue("q", retention=timedelta(seconds=-1)), "invalid_interval"),
    ("concurrency", lambda j: j.configure_queue("q", concurrency=0), "invalid_concurrency"),
    ("purge batch", lambda j: j.purge(batch_size=0), "invalid_batch_size"),
]


@pytest.mark.parametrize(("what", "call", "code"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_is_a_typed_error_and_writes_nothing(app: AppKit, stack: StackHandle, what: str,
                                                        call: Callable[[Any], Any], code: str) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        before = conn.execute("select max(id) from appkit.jobs").fetchone()
        schedules = conn.execute("select count(*) from appkit.job_schedules").fetchone()
    with pytest.raises(errors.ValidationError) as info:
        call(app.admin.jobs)
    assert info.value.code == code
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select max(id) from appkit.jobs").fetchone() == before
        assert conn.execute("select count(*) from appkit.job_schedules").fetchone() == schedules


def test_server_side_checks_reach_the_sdk_as_typed_errors(app: AppKit) -> None:
    rest = app.admin
    with pytest.raises(errors.ValidationError):  # the SQL function's own check (22023)
        rest.rpc("enqueue", {"queue": "ok", "payload": 5}, schema="appkit")
    with pytest.raises(errors.ValidationError):  # check constraint (23514)
        rest.rpc("enqueue", {"queue": "no spaces", "payload": {}}, schema="appkit")


async def test_async_client_same_surface(stack: StackHandle) -> None:
    app = make_async_app(stack)
    try:
        q = qname("async")
        job = await app.admin.jobs.enqueue(q, {"a": 1})
        assert (await app.admin.jobs.get(job.id)).id == job.id
        assert await app.admin.jobs.enqueue_many(q, [{}, {}]) == [job.id + 1, job.id + 2]
        assert [s.queued for s in await app.admin.jobs.stats(q)] == [3]
    finally:
        await app.aclose()


# -- RLS matrix --------------------------------------------------------------------------------

USER_QUEUE_PATTERN = """
grant execute on function appkit.enqueue(text, jsonb, timestamptz, integer, integer, text) to authenticated;
grant insert (queue, payload, run_at, priority, max_attempts, idempotency_key) on appkit.jobs to authenticated;
grant select on appkit.jobs to authenticated;
create policy {policy}_enqueue on appkit.jobs for insert to authenticated
    with check (queue = any (array['{queue}']) and created_by = (select auth.uid())
                and priority <= 0 and max_attempts <= 5);
create policy {policy}_read on appkit.jobs for select to authenticated
    using (created_by = (select auth.uid()));
"""
UNDO_PATTERN = """
drop policy if exists {policy}_enqueue on appkit.jobs;
drop policy if exists {policy}_read on appkit.jobs;
revoke insert (queue, payload, run_at, priority, max_attempts, idempotency_key) on appkit.jobs from authenticated;
revoke select on appkit.jobs from authenticated;
revoke execute on function appkit.enqueue(text, jsonb, timestamptz, integer, integer, text) from authenticated;
"""


def _outcome(fn: Callable[[], Any]) -> str:
    """``allow`` when the call did what it asked; ``deny`` when refused or it saw nothing."""
    try:
        result = fn()
    except (errors.PermissionDenied, errors.NotFound, errors.AuthError):
        return "deny"
    if result is None or (isinstance(result, list) and not result):
        return "deny"
    return "allow"


@pytest.fixture()
def actors(app: AppKit) -> Iterator[dict[str, AppKit]]:
    yield {"anon": app, "user": app.as_user(signed_up(app)), "other": app.as_user(signed_up(app)),
           "service": app.admin}


def _run_matrix(actors: dict[str, AppKit], ops: dict[str, Callable[[AppKit], Any]],
                expected: dict[tuple[str, str], str]) -> None:
    got = {(op, actor): _outcome(lambda fn=fn, a=actors[actor]: fn(a))  # type: ignore[misc]
           for op, fn in ops.items() for actor in actors}
    wrong = {k: v for k, v in got.items() if expected[k] != v}
    if wrong:
        lines = [f"{'operation':32} " + " ".join(f"{a:>8}" for a in actors)]
        for op in ops:
            cells = []
            for actor in actors:
                mark = got[(op, actor)] + ("!" if (op, actor) in wrong else "")
                cells.append(f"{mark:>8}")
            lines.append(f"{op:32} " + " ".join(cells))
        pytest.fail("RLS matrix mismatch (! = unexpected):\n" + "\n".join(lines))


def test_rls_matrix(actors: dict[str, AppKit], stack: StackHandle) -> None:
    open_q, closed_q = qname("open"), qname("closed")
    policy = f"p_{uuid.uuid4().hex[:8]}"
    svc = actors["service"].jobs
    svc_job = svc.enqueue(closed_q, {"s": 1})
    dead = svc.enqueue(closed_q, {"s": 2})
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.jobs set status = 'dead', finished_at = now() where id = %s", (dead.id,))
    sched = qname("sched")

    ops: dict[str, Callable[[AppKit], Any]] = {
        "enqueue(open queue)": lambda a: a.jobs.enqueue(open_q, {"x": 1}),
        "enqueue(closed queue)": lambda a: a.jobs.enqueue(closed_q, {"x": 1}),
        "enqueue_many(open queue)": lambda a: a.jobs.enqueue_many(open_q, [{}, {}]),
        "get(service's job)": lambda a: a.jobs.get(svc_job.id),
        "list(closed queue)": lambda a: a.jobs.list(queue=closed_q),
        "cancel(service's job)": lambda a: a.jobs.cancel(svc_job.id),
        "retry(dead job)": lambda a: a.jobs.retry(dead.id),
        "stats(closed queue)": lambda a: a.jobs.stats(closed_q),
        "purge": lambda a: a.jobs.purge(older_than=timedelta(days=3650)) + 1,
        "configure_queue": lambda a: a.jobs.configure_queue(qname("cfg"), concurrency=2) or True,
        "add_schedule": lambda a: a.jobs.add_schedule(qname("s"), "0 * * * *", closed_q),
        "list schedules": lambda a: [s for s in a.jobs.schedules() if s.name == sched],
    }
    svc.add_schedule(sched, "0 0 * * *", closed_q)
    allow_service = {op: "allow" for op in ops}
    default = {(op, actor): ("allow" if actor == "service" else "deny") for op in ops for actor in actors}
    # the service role's cancel/retry run first in the matrix order; retry after cancel both allowed
    for op in ops:
        default[(op, "service")] = allow_service[op]
    _run_matrix(actors, ops, default)

    # docs/jobs.md's pattern: users may enqueue to one named queue and read their own jobs
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(USER_QUEUE_PATTERN.format(policy=policy, queue=open_q))
    try:
        user_job = actors["user"].jobs.enqueue(open_q, {"mine": True})
        assert user_job.created_by is not None and user_job.status is JobStatus.queued
        svc_job = svc.enqueue(closed_q, {"s": 3})
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("update appkit.jobs set status = 'dead', finished_at = now() where id = %s", (dead.id,))
        pattern_ops: dict[str, Callable[[AppKit], Any]] = {
            "enqueue(open queue)": ops["enqueue(open queue)"],
            "enqueue(closed queue)": ops["enqueue(closed queue)"],
            "enqueue(open, priority 9)": lambda a: a.jobs.enqueue(open_q, {}, priority=9),
            "get(own job)": lambda a: a.jobs.get(user_job.id),
            "get(service's job)": lambda a: a.jobs.get(svc_job.id),
            "list(open queue)": lambda a: a.jobs.list(queue=open_q),
            "cancel(user's job)": lambda a: a.jobs.cancel(user_job.id),
            "stats(open queue)": lambda a: a.jobs.stats(open_q),
            "configure_queue": ops["configure_queue"],
            "list schedules": ops["list schedules"],
        }
        expected = {
            ("enqueue(open queue)", "anon"): "deny", ("enqueue(open queue)", "user"): "allow",
            ("enqueue(open queue)", "other"): "allow", ("enqueue(open queue)", "service"): "allow",
            ("enqueue(closed queue)", "anon"): "deny", ("enqueue(closed queue)", "user"): "deny",
            ("enqueue(closed queue)", "other"): "deny", ("enqueue(closed queue)", "service"): "allow",
            ("enqueue(open, priority 9)", "anon"): "deny", ("enqueue(open, priority 9)", "user"): "deny",
            ("enqueue(open, priority 9)", "other"): "deny", ("enqueue(open, priority 9)", "service"): "allow",
            ("get(own job)", "anon"): "deny", ("get(own job)", "user"): "allow",
            ("get(own job)", "other"): "deny", ("get(own job)", "service"): "allow",
            ("get(service's job)", "anon"): "deny", ("get(service's job)", "user"): "deny",
            ("get(service's job)", "other"): "deny", ("get(service's job)", "service"): "allow",
            ("list(open queue)", "anon"): "deny", ("list(open queue)", "user"): "allow",
            ("list(open queue)", "other"): "allow", ("list(open queue)", "service"): "allow",
            ("cancel(user's job)", "anon"): "deny", ("cancel(user's job)", "user"): "deny",
            ("cancel(user's job)", "other"): "deny", ("cancel(user's job)", "service"): "allow",
            ("stats(open queue)", "anon"): "deny", ("stats(open queue)", "user"): "deny",
            ("stats(open queue)", "other"): "deny", ("stats(open queue)", "service"): "allow",
            ("configure_queue", "anon"): "deny", ("configure_queue", "user"): "deny",
            ("configure_queue", "other"): "deny", ("configure_queue", "service"): "allow",
            ("list schedules", "anon"): "deny", ("list schedules", "user"): "deny",
            ("list schedules", "other"): "deny", ("list schedules", "service"): "allow",
        }
        _run_matrix(actors, pattern_ops, expected)
        # a user sees only their own jobs in the open queue
        mine = actors["user"].jobs.list(queue=open_q)
        assert mine and {j.created_by for j in mine} == {user_job.created_by}
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute(UNDO_PATTERN.format(policy=policy))


# -- advisors ----------------------------------------------------------------------------------

def _supabase_cli() -> str:
    return os.environ.get("APPKIT_SUPABASE_CLI") or "/tmp/sbcli/node_modules/.bin/supabase"


def test_supabase_db_advisors_clean_on_appkit(stack: StackHandle, tmp_path: Path) -> None:
    cli = _supabase_cli()
    if not Path(cli).exists():
        pytest.fail(f"the Supabase CLI is not installed at {cli} (set APPKIT_SUPABASE_CLI)")
    # splinter reads the exposed schemas from pgrst.db_schemas in its own session: pass it at startup
    url = stack.db_url + ("&" if "?" in stack.db_url else "?") + "sslmode=disable&pgrst.db_schemas=public,appkit"
    proc = subprocess.run([cli, "db", "advisors", "--db-url", url, "--level", "warn"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip()
    findings = json.loads(out[out.index("["):]) if "[" in out else []
    ours = [f for f in findings if (f.get("metadata") or {}).get("schema") == "appkit"]
    assert ours == [], json.dumps(ours, indent=1)[:4000]
