-- Queries of the local stack's pg_cron scheduler (appkit/local/cron.py).

-- name: emulated
-- Whether this database has appkit's pg_cron (a real pg_cron runs its own jobs).
select to_regprocedure('cron._appkit_schedule_is_valid(text)') is not null
   and to_regclass('cron.job') is not null
   and to_regclass('cron.job_run_details') is not null

-- name: jobs
-- The jobs to schedule.
select jobid, schedule, command, database, username, active from cron.job order by jobid

-- name: fail_orphaned_runs
-- Runs left starting/running by a scheduler (or a server) that stopped, as pg_cron marks them.
update cron.job_run_details set status = 'failed', return_message = 'server restarted'
 where status in ('starting', 'running') and not (runid = any(%(live)s))

-- name: run_starting
-- A run begins.
insert into cron.job_run_details (jobid, database, username, command, status)
values (%(jobid)s, %(database)s, %(username)s, %(command)s, 'starting')
returning runid

-- name: run_running
-- The job's connection is up and its command is sent.
update cron.job_run_details set status = 'running', job_pid = %(pid)s, start_time = %(start)s
 where runid = %(runid)s

-- name: run_finished
-- A run ends (succeeded or failed), with pg_cron's return message.
update cron.job_run_details
   set status = %(status)s, return_message = %(message)s, start_time = coalesce(start_time, %(start)s),
       end_time = %(end)s
 where runid = %(runid)s
