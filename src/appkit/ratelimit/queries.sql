-- name: list_buckets
-- The stored buckets whose key starts with a prefix, refilled to now, most recently used first.
select b.key, b.capacity, b.refill_per_second, b.tokens,
       least(b.capacity::double precision,
             b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * b.refill_per_second)
         as level,
       b.updated_at
  from appkit.rate_limits b
 where starts_with(b.key, %(prefix)s)
 order by b.updated_at desc, b.key
 limit %(limit)s;

-- name: reset_key
-- Delete every bucket of one exact key; returns how many.
select appkit.rate_limit_reset(%(key)s) as deleted;

-- name: reset_prefix
-- Delete every bucket whose key starts with a prefix; returns how many.
with gone as (delete from appkit.rate_limits b where starts_with(b.key, %(prefix)s) returning 1)
select count(*)::integer as deleted from gone;
