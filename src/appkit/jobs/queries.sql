-- The SQL the jobs worker runs over its direct Postgres connection, one named block per query
-- (loaded by appkit.jobs.queries). Parameters are psycopg %(name)s placeholders.

-- name: listen
-- Subscribe to enqueue notifications (payload: the queue name).
LISTEN appkit_jobs;

-- name: claim_jobs
-- Mark this worker's finished jobs succeeded, then claim up to %(limit)s ready jobs of one queue under a lease.
-- Returns one row of parallel arrays in start order (best priority first): ids, attempts, max_attempts,
-- priorities, created_at, and the payloads as one JSON array text, so the worker parses one value per
-- batch rather than one row and one JSON document per job.
with done as (
    update appkit.jobs j
       set status = 'succeeded', finished_at = now(), lease_until = null
      from unnest(%(done_ids)s::bigint[], %(done_attempts)s::integer[]) as d(id, attempt)
     where j.id = d.id and j.attempts = d.attempt and j.status = 'running' and j.worker_id = %(worker)s
    returning j.id
), ready as (
    select j.ctid
      from appkit.jobs j
     where j.queue = %(queue)s and j.status in ('queued', 'failed') and j.run_at <= now()
     order by j.priority desc, j.run_at, j.id
     limit case when %(concurrency)s::integer is null then %(limit)s::integer
                else least(%(limit)s::integer, greatest(0, %(concurrency)s::integer - (
                         select count(*) from appkit.jobs r where r.queue = %(queue)s and r.status = 'running'
                     )::integer))
           end
       for update skip locked
), claimed as (
    update appkit.jobs j
       set status = 'running', attempts = j.attempts + 1, started_at = now(),
           lease_until = now() + make_interval(secs => %(lease)s), worker_id = %(worker)s
      from ready r
     where j.ctid = r.ctid  -- the row version just locked (a TID scan, no second index lookup)
    returning j.id, j.payload, j.attempts, j.max_attempts, j.priority, j.created_at
)
select coalesce(array_agg(c.id order by c.priority desc, c.id), '{}'),
       coalesce(array_agg(c.attempts order by c.priority desc, c.id), '{}'),
       coalesce(array_agg(c.max_attempts order by c.priority desc, c.id), '{}'),
       coalesce(array_agg(c.priority::integer order by c.priority desc, c.id), '{}'),
       coalesce(array_agg(c.created_at order by c.priority desc, c.id), '{}'),
       coalesce(json_agg(c.payload order by c.priority desc, c.id)::text, '[]')
  from claimed c;

-- name: complete_jobs
-- Mark this worker's finished jobs succeeded (ids and attempt numbers as parallel arrays).
update appkit.jobs j
   set status = 'succeeded', finished_at = now(), lease_until = null
  from unnest(%(done_ids)s::bigint[], %(done_attempts)s::integer[]) as d(id, attempt)
 where j.id = d.id and j.attempts = d.attempt and j.status = 'running' and j.worker_id = %(worker)s;

-- name: lock_queue
-- Serialise claims on a queue with a concurrency limit (until the end of the transaction).
select pg_advisory_xact_lock(hashtext('appkit.jobs'), hashtext(%(queue)s));

-- name: fail_job
-- Record a failed attempt: dead when %(dead)s or out of attempts, else failed and due again after %(retry_in)s s.
update appkit.jobs j
   set status = case when %(dead)s or j.attempts >= coalesce(%(max_attempts)s::integer, j.max_attempts)
                     then 'dead' else 'failed' end,
       finished_at = case when %(dead)s or j.attempts >= coalesce(%(max_attempts)s::integer, j.max_attempts)
                          then now() end,
       run_at = case when %(dead)s or j.attempts >= coalesce(%(max_attempts)s::integer, j.max_attempts)
                     then j.run_at else now() + make_interval(secs => %(retry_in)s) end,
       last_error = %(error)s, lease_until = null
 where j.id = %(id)s and j.attempts = %(attempt)s and j.status = 'running' and j.worker_id = %(worker)s
returning j.status;

-- name: extend_leases
-- Heartbeat: extend the leases of this worker's running jobs.
update appkit.jobs j
   set lease_until = now() + make_interval(secs => %(lease)s)
  from unnest(%(ids)s::bigint[], %(attempts)s::integer[]) as d(id, attempt)
 where j.id = d.id and j.attempts = d.attempt and j.status = 'running' and j.worker_id = %(worker)s;

-- name: release_jobs
-- Give back running jobs this worker will not finish (shutdown): queued again, the attempt not counted.
with released as (
    update appkit.jobs j
       set status = 'queued', attempts = greatest(j.attempts - 1, 0), lease_until = null, worker_id = null,
           started_at = null, run_at = now()
      from unnest(%(ids)s::bigint[], %(attempts)s::integer[]) as d(id, attempt)
     where j.id = d.id and j.attempts = d.attempt and j.status = 'running' and j.worker_id = %(worker)s
    returning j.queue
)
select pg_notify('appkit_jobs', q.queue) from (select distinct queue from released) q;

-- name: reap_expired
-- Jobs whose lease expired (their worker died): queued again now, or dead when out of attempts.
with lost as (
    select j.id from appkit.jobs j
     where j.status = 'running' and j.lease_until < now()
       for update skip locked
), reaped as (
    update appkit.jobs j
       set status = case when j.attempts >= j.max_attempts then 'dead' else 'queued' end,
           finished_at = case when j.attempts >= j.max_attempts then now() end,
           last_error = 'lease expired: worker ' || coalesce(j.worker_id, '?') || ' stopped heartbeating',
           lease_until = null, run_at = now()
      from lost l
     where j.id = l.id
    returning j.id, j.queue, j.status, j.worker_id
), woken as (
    select pg_notify('appkit_jobs', q.queue) from (select distinct queue from reaped where status = 'queued') q
)
select r.id, r.queue, r.status, (select count(*) from woken) from reaped r;

-- name: queue_settings
-- Concurrency limits of the given queues (queues without a row have none).
select name, concurrency from appkit.job_queues where name = any(%(queues)s::text[]);

-- name: due_schedules
-- Enabled schedules whose next firing is due, or not computed yet.
select name, cron, timezone, next_run_at
  from appkit.job_schedules
 where enabled and (next_run_at is null or next_run_at <= now())
 order by next_run_at nulls first
 limit 100;

-- name: init_schedule
-- Set a new schedule's first firing (only if nobody did and the expression did not change).
update appkit.job_schedules
   set next_run_at = %(next)s
 where name = %(name)s and next_run_at is null and cron = %(cron)s and timezone = %(timezone)s;

-- name: fire_schedule
-- Advance a due schedule to its next firing and enqueue its job, in one statement: only the worker whose
-- conditional UPDATE matched %(due)s enqueues, so each firing makes one job however many workers run.
with fired as (
    update appkit.job_schedules s
       set next_run_at = %(next)s, last_run_at = s.next_run_at
     where s.name = %(name)s and s.next_run_at = %(due)s and s.enabled
       and s.cron = %(cron)s and s.timezone = %(timezone)s
    returning s.name, s.queue, s.payload, s.priority, s.max_attempts, s.last_run_at
)
insert into appkit.jobs (queue, payload, priority, max_attempts, idempotency_key)
select f.queue, f.payload, f.priority, f.max_attempts,
       'schedule:' || f.name || ':' || to_char(f.last_run_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
  from fired f
on conflict (queue, idempotency_key)
   where idempotency_key is not null and status in ('queued', 'running', 'failed')
   do nothing
returning id;

-- name: purge_jobs
-- One batch of retention, by one worker at a time: -1 if another worker holds the purge lock.
select case when pg_try_advisory_xact_lock(hashtext('appkit.jobs'), hashtext('purge'))
            then appkit.purge_jobs(null, %(batch)s) else -1 end;

-- name: dead_tuples
-- Dead row versions in appkit.jobs (from the statistics collector; a cheap estimate).
select coalesce((select n_dead_tup from pg_stat_user_tables where relid = 'appkit.jobs'::regclass), 0);

-- name: vacuum_lock
-- One worker vacuums at a time (session lock, released by vacuum_unlock).
select pg_try_advisory_lock(hashtext('appkit.jobs'), hashtext('vacuum'));

-- name: vacuum_unlock
-- Release vacuum_lock.
select pg_advisory_unlock(hashtext('appkit.jobs'), hashtext('vacuum'));

-- name: vacuum_jobs
-- Reclaim dead row versions between autovacuum runs (a busy queue makes them faster than autovacuum's naptime).
vacuum (skip_locked) appkit.jobs;
