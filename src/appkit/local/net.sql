-- Queries of pg_net's worker (appkit/local/net.py).

-- name: claim_requests
-- The oldest queued requests the worker is not already sending (committed rows only).
select id, method, url, headers, body, timeout_milliseconds
  from net.http_request_queue
 where id <> all(%(busy)s::bigint[])
 order by id
 limit %(limit)s

-- name: store_responses
-- One row per finished request in net._http_response, as pg_net's worker inserts them.
insert into net._http_response (id, status_code, content, headers, content_type, timed_out, error_msg)
select * from unnest(%(ids)s::bigint[], %(status)s::int[], %(content)s::text[], %(headers)s::jsonb[],
                     %(content_type)s::text[], %(timed_out)s::bool[], %(error)s::text[])

-- name: dequeue
-- Finished requests leave the queue in the transaction that stores their responses.
delete from net.http_request_queue where id = any(%(ids)s::bigint[])

-- name: expire_responses
-- Responses older than pg_net.ttl (6 hours unless set) are collected, as pg_net does.
delete from net._http_response
 where created < now() - coalesce(nullif(current_setting('pg_net.ttl', true), ''), '6 hours')::interval

-- name: batch_size
-- pg_net.batch_size: how many queued requests are taken at once (200 unless set).
select coalesce(nullif(current_setting('pg_net.batch_size', true), ''), '200')::int
