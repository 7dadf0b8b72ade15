-- appkit jobs: a Postgres-backed job queue (tables, the SQL API, RLS, grants).
--
-- A job is enqueued by appkit.enqueue() (from an RPC, a trigger or the SDK), claimed by a
-- worker with FOR UPDATE SKIP LOCKED under a lease renewed by heartbeats, and finished as
-- succeeded, failed (waiting for a retry with backoff) or dead. By default only the service
-- role may enqueue or read jobs; docs/jobs.md shows how to open a named queue to users.

-- Per-queue settings (a queue without a row uses the defaults: no concurrency limit, 7 days
-- of retention for finished jobs).
create table appkit.job_queues (
    name text primary key check (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    concurrency integer check (concurrency is null or concurrency > 0),
    retention interval not null default interval '7 days' check (retention >= interval '0'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table appkit.job_queues is 'Per-queue settings: concurrency (running jobs across all workers) and retention of finished jobs';

create table appkit.jobs (
    id bigint generated always as identity primary key,
    queue text not null check (queue ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    payload jsonb not null default '{}'::jsonb,
    status text not null default 'queued'
        check (status in ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority smallint not null default 0,
    run_at timestamptz not null default now(),
    attempts integer not null default 0 check (attempts >= 0),
    max_attempts integer not null default 5 check (max_attempts between 1 and 1000),
    idempotency_key text check (idempotency_key is null or length(idempotency_key) between 1 and 200),
    last_error text,
    lease_until timestamptz,
    worker_id text,
    created_by uuid default auth.uid(),
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz
) with (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
comment on table appkit.jobs is 'Background jobs: queued -> running -> succeeded | failed (retry) | dead | cancelled';

-- What a worker claims: ready jobs of one queue, best priority first, then oldest.
create index jobs_claim_idx on appkit.jobs (queue, priority desc, run_at, id)
    where status in ('queued', 'failed');
-- Running jobs: lease expiry (a dead worker's jobs) and per-queue concurrency counts.
create index jobs_running_idx on appkit.jobs (queue, lease_until) where status = 'running';
-- Retention: finished jobs by age.
create index jobs_finished_idx on appkit.jobs (finished_at)
    where status in ('succeeded', 'dead', 'cancelled');
-- De-duplication: one unfinished job per (queue, idempotency key).
create unique index jobs_idempotency_idx on appkit.jobs (queue, idempotency_key)
    where idempotency_key is not null and status in ('queued', 'running', 'failed');

-- Cron schedules: each firing enqueues one job, however many workers run (a worker advances
-- next_run_at with a conditional UPDATE and enqueues in the same statement). next_run_at
-- null means "compute from now" (a worker fills it in).
create table appkit.job_schedules (
    name text primary key check (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    cron text not null check (cron ~ '^\s*\S+(\s+\S+){4}\s*$'),
    timezone text not null default 'UTC',
    queue text not null check (queue ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    payload jsonb not null default '{}'::jsonb,
    priority smallint not null default 0,
    max_attempts integer not null default 5 check (max_attempts between 1 and 1000),
    enabled boolean not null default true,
    next_run_at timestamptz,
    last_run_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table appkit.job_schedules is 'Cron schedules (5 fields, in a time zone) that enqueue a job per firing';
create index job_schedules_due_idx on appkit.job_schedules (next_run_at) where enabled;

-- A schedule's time zone must be one Postgres knows (raises 22023 otherwise).
create function appkit.job_schedules_check_timezone() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform now() at time zone new.timezone;
    new.updated_at := now();
    return new;
end;
$$;
revoke execute on function appkit.job_schedules_check_timezone() from public;
create trigger job_schedules_check_timezone before insert or update on appkit.job_schedules
    for each row execute function appkit.job_schedules_check_timezone();

-- Wake the workers of the queues a statement enqueued to (one NOTIFY per queue and statement).
create function appkit.jobs_notify() returns trigger
language plpgsql
set search_path = ''
as $$
declare
    q text;
begin
    for q in select distinct n.queue from new_jobs n where n.status = 'queued' and n.run_at <= now() loop
        perform pg_notify('appkit_jobs', q);
    end loop;
    return null;
end;
$$;
revoke execute on function appkit.jobs_notify() from public;
create trigger jobs_notify_insert after insert on appkit.jobs
    referencing new table as new_jobs for each statement execute function appkit.jobs_notify();

-- Enqueue one job; returns it. With an idempotency key that an unfinished job of the queue
-- already has, returns that job instead of adding one. Runs as the caller (RLS applies).
create function appkit.enqueue(
    queue text,
    payload jsonb default '{}'::jsonb,
    run_at timestamptz default null,
    priority integer default 0,
    max_attempts integer default 5,
    idempotency_key text default null
) returns appkit.jobs
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
    job appkit.jobs;
begin
    if payload is null or jsonb_typeof(payload) <> 'object' and jsonb_typeof(payload) <> 'array' then
        raise exception 'a job payload must be a JSON object or array' using errcode = '22023';
    end if;
    insert into appkit.jobs as j (queue, payload, run_at, priority, max_attempts, idempotency_key)
    values (enqueue.queue, enqueue.payload, coalesce(enqueue.run_at, now()), coalesce(enqueue.priority, 0),
            coalesce(enqueue.max_attempts, 5), enqueue.idempotency_key)
    on conflict (queue, idempotency_key)
        where idempotency_key is not null and status in ('queued', 'running', 'failed')
        do nothing
    returning * into job;
    if job.id is null then
        select * into job from appkit.jobs j
         where j.queue = enqueue.queue and j.idempotency_key = enqueue.idempotency_key
           and j.status in ('queued', 'running', 'failed');
    end if;
    return job;
end;
$$;
comment on function appkit.enqueue(text, jsonb, timestamptz, integer, integer, text) is
    'Enqueue a job (in the caller''s transaction); an unfinished job with the same idempotency key is returned instead';

-- Enqueue many jobs of one queue in one statement: payloads is a JSON array of payloads.
-- Returns the new jobs' ids in payload order (an array, so no API row limit truncates it).
create function appkit.enqueue_many(
    queue text,
    payloads jsonb,
    run_at timestamptz default null,
    priority integer default 0,
    max_attempts integer default 5
) returns bigint[]
language sql
set search_path = ''
as $$
    with added as (
        insert into appkit.jobs (queue, payload, run_at, priority, max_attempts)
        select enqueue_many.queue, p.value, coalesce(enqueue_many.run_at, now()), coalesce(enqueue_many.priority, 0),
               coalesce(enqueue_many.max_attempts, 5)
          from jsonb_array_elements(case when jsonb_typeof(payloads) = 'array' then payloads
                                         else jsonb_build_array(payloads) end) with ordinality as p(value, n)
         order by p.n
        returning id
    )
    select coalesce(array_agg(id order by id), '{}') from added;
$$;
comment on function appkit.enqueue_many(text, jsonb, timestamptz, integer, integer) is
    'Enqueue one job per element of a JSON array, in one statement; returns the ids in order';

-- Cancel a job that has not started (queued or waiting for a retry). Returns the job; raises
-- P0002 if the caller cannot see it, 55000 if it is running or finished.
create function appkit.cancel_job(job_id bigint) returns appkit.jobs
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
    job appkit.jobs;
begin
    update appkit.jobs j set status = 'cancelled', finished_at = now(), lease_until = null
     where j.id = job_id and j.status in ('queued', 'failed')
    returning * into job;
    if job.id is null then
        select * into job from appkit.jobs j where j.id = job_id;
        if job.id is null then
            raise exception 'job % not found', job_id using errcode = 'P0002';
        end if;
        raise exception 'job % is %, only queued or failed jobs can be cancelled', job_id, job.status
            using errcode = '55000';
    end if;
    return job;
end;
$$;

-- Run a dead, cancelled or failed job again now, with its attempts reset.
create function appkit.retry_job(job_id bigint) returns appkit.jobs
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
    job appkit.jobs;
begin
    update appkit.jobs j set status = 'queued', attempts = 0, run_at = now(), finished_at = null,
                             lease_until = null, worker_id = null
     where j.id = job_id and j.status in ('dead', 'cancelled', 'failed')
    returning * into job;
    if job.id is not null then
        perform pg_notify('appkit_jobs', job.queue);
    end if;
    if job.id is null then
        select * into job from appkit.jobs j where j.id = job_id;
        if job.id is null then
            raise exception 'job % not found', job_id using errcode = 'P0002';
        end if;
        raise exception 'job % is %, only dead, cancelled or failed jobs can be retried', job_id, job.status
            using errcode = '55000';
    end if;
    return job;
end;
$$;

-- Counts per queue and status (of the jobs the caller can see), plus the oldest ready job's age.
create function appkit.job_stats(only_queue text default null)
returns table (queue text, queued bigint, running bigint, failed bigint, succeeded bigint, dead bigint,
               cancelled bigint, oldest_ready_seconds double precision)
language sql
stable
set search_path = ''
as $$
    select j.queue,
           count(*) filter (where j.status = 'queued'),
           count(*) filter (where j.status = 'running'),
           count(*) filter (where j.status = 'failed'),
           count(*) filter (where j.status = 'succeeded'),
           count(*) filter (where j.status = 'dead'),
           count(*) filter (where j.status = 'cancelled'),
           extract(epoch from now() - min(j.run_at) filter (where j.status in ('queued', 'failed')
                                                              and j.run_at <= now()))::double precision
      from appkit.jobs j
     where only_queue is null or j.queue = only_queue
     group by j.queue
     order by j.queue;
$$;

-- Delete finished jobs older than their queue's retention (or older_than), at most batch_size
-- rows per call (call again while it returns batch_size). Returns the number deleted.
create function appkit.purge_jobs(older_than interval default null, batch_size integer default 10000)
returns integer
language sql
set search_path = ''
as $$
    with doomed as (
        select j.id
          from appkit.jobs j
          left join appkit.job_queues q on q.name = j.queue
         where j.status in ('succeeded', 'dead', 'cancelled')
           and j.finished_at < now() - coalesce(older_than, q.retention, interval '7 days')
         limit greatest(coalesce(batch_size, 10000), 1)
           for update of j skip locked
    ), gone as (
        delete from appkit.jobs j using doomed d where j.id = d.id returning 1
    )
    select count(*)::integer from gone;
$$;

-- Privileges: nothing for anon/authenticated by default; the service role does everything.
revoke all on appkit.jobs, appkit.job_queues, appkit.job_schedules from anon, authenticated, public;
grant select, insert, update, delete on appkit.jobs, appkit.job_queues, appkit.job_schedules to service_role;
revoke execute on function appkit.enqueue(text, jsonb, timestamptz, integer, integer, text) from public;
revoke execute on function appkit.enqueue_many(text, jsonb, timestamptz, integer, integer) from public;
revoke execute on function appkit.cancel_job(bigint) from public;
revoke execute on function appkit.retry_job(bigint) from public;
revoke execute on function appkit.job_stats(text) from public;
revoke execute on function appkit.purge_jobs(interval, integer) from public;
grant execute on function appkit.enqueue(text, jsonb, timestamptz, integer, integer, text) to service_role;
grant execute on function appkit.enqueue_many(text, jsonb, timestamptz, integer, integer) to service_role;
grant execute on function appkit.cancel_job(bigint) to service_role;
grant execute on function appkit.retry_job(bigint) to service_role;
grant execute on function appkit.job_stats(text) to service_role;
grant execute on function appkit.purge_jobs(interval, integer) to service_role;

-- Row-level security on every table, with no policy: the service role bypasses RLS, every
-- other role sees nothing until a project adds a policy (docs/jobs.md, "Opening a queue to users").
alter table appkit.jobs enable row level security;
alter table appkit.job_queues enable row level security;
alter table appkit.job_schedules enable row level security;
