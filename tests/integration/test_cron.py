"""pg_cron, emulated: `create extension pg_cron` with every schema clause projects use, pg_cron's
functions and tables through real SQL, jobs that fire within the test as their username and
are recorded in cron.job_run_details, no job run twice at once, pg_cron's errors for bad input
(nothing half-done), who may see and change which jobs (RLS matrix), and the SQL validator
agreeing with the scheduler's parser."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

from appkit.local.cron import CronScheduler
from appkit.local.cronspec import is_valid
from tests.support import StackHandle, run_cli, start_stack, write_project
from tests.svc_support import Probe, assert_matrix
from tests.unit.test_cronspec import INVALID, VALID

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cron(stack: StackHandle) -> Iterator[StackHandle]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        existed = conn.execute("select 1 from pg_extension where extname = 'pg_cron'").fetchone() is not None
        conn.execute("create extension if not exists pg_cron")
    yield stack
    if not existed:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("drop extension if exists pg_cron cascade")


def run(stack: StackHandle, query: str, params: Any = None, *, user: str | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn, conn.cursor() as cur:
        if user is not None:
            cur.execute(sql.SQL("set role {}").format(sql.Identifier(user)))
        cur.execute(query.encode() if params is None else query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def succeeded(stack: StackHandle, jobid: int, count: int) -> Callable[[], list[tuple[Any, ...]]]:
    """A check for wait_for: the job's first ``count`` successful runs once there are that many."""
    def check() -> list[tuple[Any, ...]]:
        done = [r for r in runs(stack, jobid) if r[0] == "succeeded"]
        return done[:count] if len(done) >= count else []
    return check


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def runs(stack: StackHandle, jobid: int) -> list[tuple[Any, ...]]:
    return run(stack, "select status, return_message, job_pid, username, database, start_time, end_time "
                      "from cron.job_run_details where jobid = %s order by runid", (jobid,))


def name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("clause", ["", "with schema extensions", "with schema pg_catalog", "with schema cron"])
def test_create_extension_with_every_schema_clause(stack: StackHandle, clause: str) -> None:
    db = f"cron_{uuid.uuid4().hex[:8]}"
    run(stack, f"create database {db}")
    try:
        url = make_conninfo(stack.db_url, dbname=db)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create schema extensions")  # as the base schema has it
            if clause.endswith("cron"):
                conn.execute("create schema cron")  # WITH SCHEMA names an existing schema
            conn.execute(f"create extension pg_cron {clause}".encode())
            assert conn.execute("select cron.schedule('nightly', '0 3 * * *', 'vacuum')").fetchone() == (1,)
            assert conn.execute("select jobname, schedule, command, database, username, active, nodename "
                                "from cron.job").fetchall() == [("nightly", "0 3 * * *", "vacuum", db, "postgres",
                                                                 True, "localhost")]
            conn.execute("drop extension pg_cron")
            assert conn.execute("select to_regclass('cron.job')").fetchone() == (None,)
    finally:
        run(stack, f"drop database {db} with (force)")


def test_pg_crons_columns(cron: StackHandle) -> None:
    cols = run(cron, "select table_name, string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position) "
                     "from information_schema.columns where table_schema = 'cron' group by 1 order by 1")
    assert cols == [
        ("job", "jobid bigint, schedule text, command text, nodename text, nodeport integer, database text, "
                "username text, active boolean, jobname text"),
        ("job_run_details", "jobid bigint, runid bigint, job_pid integer, database text, username text, command text, "
                            "status text, return_message text, start_time timestamp with time zone, "
                            "end_time timestamp with time zone"),
    ]


def test_a_job_every_second_runs_and_each_run_is_recorded(cron: StackHandle) -> None:
    table = name()
    run(cron, f"create table public.{table} (at timestamptz default clock_timestamp(), who text default current_user)")
    job = name()
    try:
        jobid = run(cron, "select cron.schedule(%s, '1 seconds', %s)",
                    (job, f"insert into public.{table} default values"))[0][0]
        done = wait_for(succeeded(cron, jobid, 3), what="3 runs")
        for status, message, pid, user, database, start, end in done:
            assert (status, message, user, database) == ("succeeded", "INSERT 0 1", "postgres", "postgres")
            assert pid is not None and start <= end
        assert len(run(cron, f"select * from public.{table}")) >= 3
    finally:
        run(cron, "select cron.unschedule(%s)", (job,))
        run(cron, f"drop table public.{table}")


def test_return_messages_are_pg_crons(cron: StackHandle) -> None:
    jobs = {
        "select 1": ("succeeded", "1 row"),
        "select 1; select g from generate_series(1, 3) g": ("succeeded", "3 rows"),
        "select 1/0": ("failed", "ERROR:  division by zero\n"),
        "create temp table x (a int); drop table x": ("succeeded", "DROP TABLE"),
        "select * from no_such_table_here": ("failed", 'ERROR:  relation "no_such_table_here" does not exist\n'
                                                       "LINE 1: select * from no_such_table_here\n"
                                                       "                      ^\n"),
    }
    ids: dict[int, tuple[str, str]] = {}
    try:
        for command, expected in jobs.items():
            ids[run(cron, "select cron.schedule(%s, '1 seconds', %s)", (name(), command))[0][0]] = expected
        for jobid, (status, message) in ids.items():
            first = wait_for(lambda j=jobid: [r for r in runs(cron, j) if r[0] in ("succeeded", "failed")],  # type: ignore[misc]
                             what=f"a run of job {jobid}")[0]
            assert (first[0], first[1]) == (status, message)
    finally:
        for jobid in ids:
            run(cron, "select cron.unschedule(%s::bigint)", (jobid,))


def test_a_job_slower_than_its_interval_never_overlaps_itself(cron: StackHandle) -> None:
    job = name()
    jobid = run(cron, "select cron.schedule(%s, '1 seconds', 'select pg_sleep(1.6)')", (job,))[0][0]
    try:
        done = wait_for(succeeded(cron, jobid, 3), timeout=30, what="3 runs")
        spans = sorted((r[5], r[6]) for r in done)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, spans
        statuses = [r[0] for r in runs(cron, jobid)]
        assert statuses.count("running") + statuses.count("starting") <= 1
    finally:
        run(cron, "select cron.unschedule(%s)", (job,))


def test_jobs_run_as_their_username_in_their_database(cron: StackHandle) -> None:
    role, table, db = name(), name(), f"cron_{uuid.uuid4().hex[:8]}"
    run(cron, f"create role {role} login")
    run(cron, f"create database {db}")
    run(cron, f"create table public.{table} (who text, sess text, db text)")
    run(cron, f"grant insert on public.{table} to {role}")
    run(cron, f"grant usage on schema cron to {role}")
    try:
        mine = run(cron, "select cron.schedule(%s, '1 seconds', %s)",
                   (name(), f"insert into public.{table} values (current_user, session_user, current_database())"),
                   user=role)[0][0]
        elsewhere = run(cron, "select cron.schedule_in_database(%s, '1 seconds', 'select current_database()', %s)",
                        (name(), db))[0][0]
        wait_for(lambda: run(cron, f"select * from public.{table}"), what="the role's job")
        assert run(cron, f"select distinct * from public.{table}") == [(role, role, "postgres")]
        first = wait_for(lambda: [r for r in runs(cron, elsewhere) if r[0] == "succeeded"], what="the job")[0]
        assert (first[1], first[3], first[4]) == ("1 row", "postgres", db)
        assert run(cron, "select username from cron.job where jobid = %s", (mine,)) == [(role,)]
    finally:
        run(cron, "delete from cron.job where jobid in (select jobid from cron.job where username = %s or database = %s)",
            (role, db))
        run(cron, f"drop table public.{table}")
        run(cron, f"drop database {db} with (force)")
        run(cron, f"drop owned by {role}")
        run(cron, f"drop role {role}")


def test_unschedule_alter_and_upsert(cron: StackHandle) -> None:
    job = name()
    first = run(cron, "select cron.schedule(%s, '0 3 * * *', 'select 1')", (job,))[0][0]
    again = run(cron, "select cron.schedule(%s, '0 4 * * *', 'select 2')", (job,))[0][0]
    assert first == again  # the same name replaces the job, as pg_cron does
    assert run(cron, "select schedule, command from cron.job where jobid = %s", (first,)) == [("0 4 * * *", "select 2")]
    run(cron, "select cron.alter_job(%s, schedule := '1 seconds', active := false)", (first,))
    assert run(cron, "select schedule, active from cron.job where jobid = %s", (first,)) == [("1 seconds", False)]
    time.sleep(2.5)
    assert runs(cron, first) == []  # inactive jobs do not run
    run(cron, "select cron.alter_job(%s, active := true)", (first,))
    wait_for(lambda: runs(cron, first), what="a run once active")
    unnamed = run(cron, "select cron.schedule('@daily', 'select 3')")[0][0]
    assert run(cron, "select jobname from cron.job where jobid = %s", (unnamed,)) == [(None,)]
    assert run(cron, "select cron.unschedule(%s::bigint)", (unnamed,)) == [(True,)]
    assert run(cron, "select cron.unschedule(%s)", (job,)) == [(True,)]
    assert run(cron, "select count(*) from cron.job where jobid in (%s, %s)", (first, unnamed)) == [(0,)]


@pytest.mark.parametrize(("query", "params", "message"), [
    ("select cron.schedule('bad', 'not a schedule', 'select 1')", None, "invalid schedule: not a schedule"),
    ("select cron.schedule('bad', '60 seconds', 'select 1')", None, "invalid schedule: 60 seconds"),
    ("select cron.schedule('bad', '* * * *', 'select 1')", None, "invalid schedule: * * * *"),
    ("select cron.schedule('1/5 * * * *', 'select 1')", None, "invalid schedule: 1/5 * * * *"),
    ("select cron.schedule(null, '* * * * *', 'select 1')", None, "job_name can not be NULL"),
    ("select cron.schedule('bad', null, 'select 1')", None, "schedule can not be NULL"),
    ("select cron.schedule('bad', '* * * * *', null)", None, "command can not be NULL"),
    ("select cron.unschedule('no-such-job')", None, "could not find valid entry for job 'no-such-job'"),
    ("select cron.unschedule(987654321::bigint)", None, "could not find valid entry for job 987654321"),
    ("select cron.alter_job(987654321, schedule := '@daily')", None,
     "Job 987654321 does not exist or you don't own it"),
    ("select cron.alter_job(987654321)", None, "no updates specified"),
    ("select cron.alter_job(987654321, schedule := 'often')", None, "invalid schedule: often"),
    ("select cron.schedule_in_database('bad', '@daily', 'select 1', 'no_such_db')", None,
     'database "no_such_db" does not exist'),
    ("select cron.schedule_in_database('bad', '@daily', 'select 1', 'postgres', 'no_such_role')", None,
     'role "no_such_role" does not exist'),
    ("select cron.schedule_in_database('bad', '@daily', 'select 1', 'postgres', 'anon')", None,
     'role "anon" can not log in'),
    ("insert into cron.job (schedule, command) values ('every day', 'select 1')", None,
     "invalid schedule: every day"),
])
def test_bad_input_gets_pg_crons_error_and_changes_nothing(cron: StackHandle, query: str, params: Any,
                                                           message: str) -> None:
    before = run(cron, "select count(*), coalesce(max(jobid), 0) from cron.job")
    with pytest.raises(psycopg.Error) as info:
        run(cron, query, params)
    assert info.value.diag.message_primary == message
    if message.startswith("invalid schedule"):
        assert info.value.sqlstate == "22023"
        assert info.value.diag.message_hint == "Use cron format (e.g. 5 4 * * *), or interval format '[1-59] seconds'"
    assert run(cron, "select count(*), coalesce(max(jobid), 0) from cron.job") == before


def test_who_may_see_and_change_jobs(cron: StackHandle) -> None:
    owner, other = name(), name()
    for role in (owner, other):
        run(cron, f"create role {role} login")
        run(cron, f"grant usage on schema cron to {role}")
    run(cron, f"grant execute on function cron.alter_job(bigint, text, text, text, text, boolean) to {other}")
    try:
        jobid = run(cron, "select cron.schedule(%s, '@daily', 'select 1')", ("mine",), user=owner)[0][0]
        run(cron, "insert into cron.job_run_details (jobid, username, status) values (%s, %s, 'succeeded')",
            (jobid, owner))

        def did(query: str, params: Any, user: str | None, check: str) -> Callable[[], bool]:
            def probe() -> bool:
                before = run(cron, check, (jobid,))
                try:
                    got = run(cron, query, params, user=user)
                except psycopg.Error:
                    return False
                if query.lstrip().startswith("select") and "cron." not in query.split("from")[0]:
                    return bool(got)
                return run(cron, check, (jobid,)) != before
            return probe

        job_row = "select schedule, active, jobid from cron.job where jobid = %s"
        detail_row = "select count(*) from cron.job_run_details where jobid = %s"
        probes = []
        for actor, user, allowed in (("owner", owner, True), ("other role", other, False), ("anon", "anon", False)):
            probes += [
                Probe("cron.job", "select", actor, allowed,
                      did("select jobid from cron.job where jobid = %s", (jobid,), user, job_row)),
                Probe("cron.alter_job", "update", actor, False,  # revoked from public; other: not its job
                      did("select cron.alter_job(%s, schedule := '@hourly')", (jobid,), user, job_row)),
                Probe("cron.job", "update", actor, allowed,
                      did("update cron.job set active = not active where jobid = %s", (jobid,), user, job_row)),
                Probe("cron.job_run_details", "select", actor, allowed,
                      did("select runid from cron.job_run_details where jobid = %s", (jobid,), user, detail_row)),
                Probe("cron.schedule", "insert", actor, actor != "anon",
                      did("select cron.schedule(%s, '@daily', 'select 1')", (name(),), user,
                          "select count(*) from cron.job where jobid >= %s")),
                Probe("cron.schedule_in_database", "insert", actor, False,
                      did("select cron.schedule_in_database(%s, '@daily', 'select 1', 'postgres')", (name(),), user,
                          "select count(*) from cron.job where jobid >= %s")),
            ]
        probes += [
            Probe("cron.unschedule", "delete", "other role", False,
                  did("select cron.unschedule(%s::bigint)", (jobid,), other, job_row)),
            Probe("cron.job_run_details", "delete", "other role", False,
                  did("delete from cron.job_run_details where jobid = %s", (jobid,), other, detail_row)),
            Probe("cron.job_run_details", "delete", "owner", True,
                  did("delete from cron.job_run_details where jobid = %s", (jobid,), owner, detail_row)),
            Probe("cron.unschedule", "delete", "owner", True,
                  did("select cron.unschedule(%s::bigint)", (jobid,), owner, job_row)),
        ]
        assert_matrix(probes)
    finally:
        for role in (owner, other):
            run(cron, "delete from cron.job where username = %s", (role,))
            run(cron, f"drop owned by {role}")
            run(cron, f"drop role {role}")


def test_supabase_style_grants_apply(cron: StackHandle) -> None:
    run(cron, "grant usage on schema cron to postgres")
    run(cron, "grant all privileges on all tables in schema cron to postgres")
    run(cron, "grant usage on schema cron to authenticated")


EXTRA = ["@hourly now", "@ hourly", "1,2,3 1-5/2 * * sun-sat", "0 0 L * *", "*/5 * * * * *", "5 4 * * *",
         "1\tsecond", "0 0 1-31/31 * *", "0 0 31-1 * *", "007 * * * *", "1234567890 seconds", "0 0 * * SUN"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.from_regex(r"\A(@[a-z]{0,8}|[0-9*$a-z/,\-]{1,6}( [0-9*$a-z/,\-]{1,6}){3,5}|[0-9 ]{1,4}seconds?)\Z"),
                min_size=20, max_size=20))
def test_the_sql_validator_agrees_with_the_scheduler(cron: StackHandle, texts: list[str]) -> None:
    texts = texts + VALID + INVALID + EXTRA
    got = run(cron, "select t, cron._appkit_schedule_is_valid(t) from unnest(%s::text[]) t", (texts,))
    assert [(t, is_valid(t)) for t in texts] == got


def test_jobs_survive_a_postgres_crash_and_a_stack_restart(tmp_path: Path) -> None:
    write_project(tmp_path)
    h = start_stack(tmp_path)
    try:
        run(h, "create extension pg_cron with schema pg_catalog")
        run(h, "create table public.ticks (at timestamptz default clock_timestamp())")
        tick = run(h, "select cron.schedule('tick', '1 seconds', 'insert into public.ticks default values')")[0][0]
        slow = run(h, "select cron.schedule('slow', '1 seconds', 'select pg_sleep(60)')")[0][0]
        wait_for(succeeded(h, tick, 2), what="ticks")
        wait_for(lambda: [r for r in runs(h, slow) if r[0] == "running"], what="the slow job running")
        pgdata = (tmp_path / "supabase" / ".appkit" / "pgdata").resolve()
        os.kill(int((pgdata / "postmaster.pid").read_text().splitlines()[0]), signal.SIGKILL)
        killed = datetime.now(UTC)

        def after(at: datetime) -> Callable[[], bool]:
            def check() -> bool:
                try:
                    return bool(run(h, "select 1 from cron.job_run_details where jobid = %s and status = 'succeeded' "
                                       "and start_time > %s", (tick, at)))
                except psycopg.OperationalError:
                    return False
            return check

        wait_for(after(killed), timeout=120, what="a run after the supervisor restarted postgres")  # crash recovery under load
        interrupted = [r for r in runs(h, slow) if r[5] is not None and r[5] < killed]
        assert interrupted and all(r[0] == "failed" for r in interrupted), interrupted
        assert {r[1] for r in interrupted} <= {"server restarted", "connection failed"}
    finally:
        h.stop()
    h = start_stack(tmp_path)
    try:
        restarted = datetime.now(UTC)
        wait_for(after(restarted), timeout=30, what="a run after the stack restarted")
        assert not [r for r in runs(h, slow) if r[0] in ("starting", "running") and r[5] is not None
                    and r[5] < restarted]
    finally:
        h.stop()
        run_cli("stop", "--workdir", str(tmp_path))


async def test_a_second_scheduler_on_the_same_database_runs_nothing(cron: StackHandle) -> None:
    job = name()
    jobid = run(cron, "select cron.schedule(%s, '1 seconds', 'select 1')", (job,))[0][0]
    second = CronScheduler(cron.db_url)
    task = asyncio.create_task(second.run())
    try:
        await asyncio.sleep(3.5)
        assert second._jobs == {} and not second._tasks  # the stack's scheduler holds the lock
        started = [r[5] for r in runs(cron, jobid) if r[5] is not None]
        per_second = [int(s.timestamp()) for s in started]
        assert len(per_second) >= 2 and len(set(per_second)) == len(per_second)  # one run per slot
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        run(cron, "select cron.unschedule(%s)", (job,))


def test_a_role_that_cannot_log_in_gets_connection_failed(cron: StackHandle) -> None:
    jobid = run(cron, "insert into cron.job (schedule, command, username, jobname) "
                      "values ('1 seconds', 'select 1', 'anon', %s) returning jobid", (name(),))[0][0]
    try:
        first = wait_for(lambda: [r for r in runs(cron, jobid) if r[0] == "failed"], what="a failed run")[0]
        assert (first[1], first[3]) == ("connection failed", "anon")
    finally:
        run(cron, "select cron.unschedule(%s::bigint)", (jobid,))
