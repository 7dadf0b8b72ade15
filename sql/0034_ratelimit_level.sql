-- Rate limits: a bucket's refill level said once, in appkit._rate_limit_level().
--
-- 0030 wrote the refill expression (tokens plus elapsed seconds times the rate, capped at the
-- capacity) in four places: the SET and the WHERE of rate_limit()'s upsert, its denied path,
-- rate_limit_check() and (uncapped) rate_limit_purge(). They now all call one function, with
-- the same answers: rate_limit() still decides under the upsert's row lock, in one statement.
-- 0030 is shipped (sql/README.md), so this file replaces the functions rather than editing it.

-- How many tokens a bucket holds at `at`: `tokens` left at `since`, refilled at `refill_per_second`,
-- never more than `capacity` (a clock that went backwards refills nothing).
create function appkit._rate_limit_level(tokens double precision, capacity integer,
                                         refill_per_second double precision, since timestamptz,
                                         at timestamptz)
returns double precision
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
  return least(capacity::double precision,
               tokens + greatest(0, extract(epoch from at - since)) * refill_per_second);
end;
$$;
comment on function appkit._rate_limit_level(double precision, integer, double precision, timestamptz, timestamptz) is
  'Tokens in a bucket at a time: what was left, refilled at its rate since, capped at its capacity.';

create or replace function appkit.rate_limit(key text, capacity integer, refill_per_second double precision,
                                             cost integer default 1,
                                             out allowed boolean, out remaining integer,
                                             out retry_after double precision)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  k text := appkit.rate_limit_key(key);
  ts timestamptz := clock_timestamp();
  left_after double precision;
  level double precision;
begin
  perform appkit._rate_limit_check_args(capacity, refill_per_second, cost);
  insert into appkit.rate_limits as b (key, capacity, refill_per_second, tokens, updated_at)
  values (k, capacity, refill_per_second, capacity - cost, ts)
  on conflict on constraint rate_limits_pkey do update
    set tokens = appkit._rate_limit_level(b.tokens, b.capacity, b.refill_per_second, b.updated_at,
                                          excluded.updated_at) - cost,
        updated_at = greatest(b.updated_at, excluded.updated_at)
    where appkit._rate_limit_level(b.tokens, b.capacity, b.refill_per_second, b.updated_at,
                                   excluded.updated_at) >= cost
  returning b.tokens into left_after;
  if found then
    allowed := true; remaining := floor(left_after)::integer; retry_after := 0;
    return;
  end if;
  -- denied: the row is locked by the upsert above, so this reads the level it decided on
  select appkit._rate_limit_level(b.tokens, b.capacity, b.refill_per_second, b.updated_at, ts)
    into level
    from appkit.rate_limits b
   where b.key = k and b.capacity = rate_limit.capacity and b.refill_per_second = rate_limit.refill_per_second;
  allowed := false; remaining := floor(level)::integer;
  retry_after := case when refill_per_second > 0 then (cost - level) / refill_per_second end;
end;
$$;

create or replace function appkit.rate_limit_check(key text, capacity integer, refill_per_second double precision,
                                                   cost integer default 1,
                                                   out allowed boolean, out remaining integer,
                                                   out retry_after double precision)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  k text := appkit.rate_limit_key(key);
  level double precision;
begin
  perform appkit._rate_limit_check_args(capacity, refill_per_second, cost);
  select appkit._rate_limit_level(b.tokens, b.capacity, b.refill_per_second, b.updated_at, clock_timestamp())
    into level
    from appkit.rate_limits b
   where b.key = k and b.capacity = rate_limit_check.capacity
     and b.refill_per_second = rate_limit_check.refill_per_second;
  if not found then
    level := capacity;
  end if;
  allowed := level >= cost;
  remaining := floor(level)::integer;
  retry_after := case when allowed then 0
                      when refill_per_second > 0 then (cost - level) / refill_per_second end;
end;
$$;

create or replace function appkit.rate_limit_purge()
returns integer
language sql
volatile
set search_path = ''
as $$
  with gone as (
    delete from appkit.rate_limits b
     where appkit._rate_limit_level(b.tokens, b.capacity, b.refill_per_second, b.updated_at, clock_timestamp())
           >= b.capacity
    returning 1)
  select count(*)::integer from gone
$$;

revoke execute on function appkit._rate_limit_level(double precision, integer, double precision, timestamptz,
                                                    timestamptz) from public;
-- runs inside the security-definer functions as their owner, and in rate_limit_purge() as the service role
grant execute on function appkit._rate_limit_level(double precision, integer, double precision, timestamptz,
                                                   timestamptz) to service_role;
