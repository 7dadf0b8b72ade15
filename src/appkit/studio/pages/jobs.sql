-- Queries of the studio's Jobs page (the admin CLI's direct-database reads of appkit.jobs).

-- name: throughput
-- Jobs finished per queue in the last minute and the last five minutes (uses jobs_finished_idx).
select queue,
       count(*) filter (where finished_at > now() - interval '1 minute') as last_minute,
       count(*) as last_five_minutes
  from appkit.jobs
 where status in ('succeeded', 'dead', 'cancelled')
   and finished_at > now() - interval '5 minutes'
 group by queue
 order by queue;
