-- Rate limits: atomic token buckets in Postgres, usable from RLS policies, RPCs and the SDK.
--
-- A bucket is identified by (key, capacity, refill_per_second): a caller asking with other
-- numbers gets another bucket, so nobody can refill a bucket by calling it with a bigger
-- capacity or rate. Keys are scoped by the caller's JWT: the service role (and a direct
-- database connection, which has no JWT) uses the key as given; a signed-in user's key is
-- stored as 'user:<uid>:<key>' and an anonymous caller's as 'anon:<key>', so a user can only
-- ever drain their own buckets. A bucket that has refilled to capacity is the same as no row,
-- so appkit.rate_limit_purge() may delete it at any time.

create table appkit.rate_limits (
  key text not null check (length(key) between 1 and 512),
  capacity integer not null check (capacity > 0),
  refill_per_second double precision not null check (refill_per_second >= 0
                                                     and refill_per_second < 'infinity'::double precision),
  tokens double precision not null,
  updated_at timestamptz not null default clock_timestamp(),
  primary key (key, capacity, refill_per_second)
);
comment on table appkit.rate_limits is 'Token buckets of appkit.rate_limit(); read and reset by the service role.';

alter table appkit.rate_limits enable row level security;
revoke all on table appkit.rate_limits from public, anon, authenticated;
grant select, delete on table appkit.rate_limits to service_role;
-- service_role bypasses RLS; the policy documents (and keeps advisors quiet about) who reads it.
create policy rate_limits_service_role on appkit.rate_limits for select to service_role using (true);

-- The bucket key a caller may use: scoped by the JWT's role and subject.
create or replace function appkit.rate_limit_key(key text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  role text := claims ->> 'role';
begin
  if key is null or length(key) = 0 or length(key) > 400 then
    raise exception 'rate limit key must be 1 to 400 characters' using errcode = '22023';
  end if;
  if claims is null or role = 'service_role' then
    return key;
  end if;
  if claims ->> 'sub' is not null and role is distinct from 'anon' then
    return 'user:' || (claims ->> 'sub') || ':' || key;
  end if;
  return 'anon:' || key;
end;
$$;
comment on function appkit.rate_limit_key(text) is
  'The stored bucket key for the caller: as given for the service role, user:<uid>:<key> for a user, anon:<key> for anon.';

create or replace function appkit._rate_limit_check_args(capacity integer, refill_per_second double precision,
                                                         cost integer)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  if capacity is null or capacity <= 0 then
    raise exception 'rate limit capacity must be a positive integer' using errcode = '22023';
  end if;
  -- NaN sorts above infinity in Postgres, so the second test rejects both
  if refill_per_second is null or refill_per_second < 0 or refill_per_second >= 'infinity'::double precision then
    raise exception 'rate limit refill_per_second must be a finite number >= 0' using errcode = '22023';
  end if;
  if cost is null or cost < 0 or cost > capacity then
    raise exception 'rate limit cost must be between 0 and the capacity (%)', capacity using errcode = '22023';
  end if;
  return true;
end;
$$;

-- Take `cost` tokens from the bucket if it has them; never over-grants under concurrency (the
-- upsert holds the bucket's row lock while it decides).
-- Answers: allowed, whole tokens left, seconds until `cost` tokens are available again (0 when
-- allowed, null when the bucket never refills).
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
    set tokens = least(b.capacity::double precision,
                       b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                                  * b.refill_per_second) - cost,
        updated_at = greatest(b.updated_at, excluded.updated_at)
    where least(b.capacity::double precision,
                b.tokens + greatest(0, extract(epoch from excluded.updated_at - b.updated_at))
                           * b.refill_per_second) >= cost
  returning b.tokens into left_after;
  if found then
    allowed := true; remaining := floor(left_after)::integer; retry_after := 0;
    return;
  end if;
  -- denied: the row is locked by the upsert above, so this reads the level it decided on
  select least(b.capacity::double precision,
               b.tokens + greatest(0, extract(epoch from ts - b.updated_at)) * b.refill_per_second)
    into level
    from appkit.rate_limits b
   where b.key = k and b.capacity = rate_limit.capacity and b.refill_per_second = rate_limit.refill_per_second;
  allowed := false; remaining := floor(level)::integer;
  retry_after := case when refill_per_second > 0 then (cost - level) / refill_per_second end;
end;
$$;
comment on function appkit.rate_limit(text, integer, double precision, integer) is
  'Token bucket: take cost tokens from the caller''s bucket (key, capacity, refill_per_second); returns allowed, remaining, retry_after.';

-- The state a consume would see, without taking anything.
-- Answers: allowed, whole tokens left, seconds until `cost` tokens are available again (0 when
-- allowed, null when the bucket never refills).
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
  select least(b.capacity::double precision,
               b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * b.refill_per_second)
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
comment on function appkit.rate_limit_check(text, integer, double precision, integer) is
  'What appkit.rate_limit would answer, without consuming.';

-- Forget a key's buckets (every capacity/rate): the service role only. Returns how many.
create or replace function appkit.rate_limit_reset(key text)
returns integer
language sql
volatile
set search_path = ''
as $$
  with gone as (delete from appkit.rate_limits b where b.key = rate_limit_reset.key returning 1)
  select count(*)::integer from gone
$$;
comment on function appkit.rate_limit_reset(text) is 'Delete every bucket of this exact key (service role).';

-- Delete buckets that have refilled to capacity (they carry no state). Returns how many.
create or replace function appkit.rate_limit_purge()
returns integer
language sql
volatile
set search_path = ''
as $$
  with gone as (
    delete from appkit.rate_limits b
     where b.tokens + extract(epoch from clock_timestamp() - b.updated_at) * b.refill_per_second >= b.capacity
    returning 1)
  select count(*)::integer from gone
$$;
comment on function appkit.rate_limit_purge() is 'Delete full (stateless) buckets; run it from a scheduled job.';

revoke execute on function appkit.rate_limit_key(text) from public;
revoke execute on function appkit._rate_limit_check_args(integer, double precision, integer) from public;
revoke execute on function appkit.rate_limit(text, integer, double precision, integer) from public;
revoke execute on function appkit.rate_limit_check(text, integer, double precision, integer) from public;
revoke execute on function appkit.rate_limit_reset(text) from public;
revoke execute on function appkit.rate_limit_purge() from public;
-- the two helpers run inside the security-definer functions, as their owner
grant execute on function appkit.rate_limit_key(text) to service_role;
grant execute on function appkit._rate_limit_check_args(integer, double precision, integer) to service_role;
grant execute on function appkit.rate_limit(text, integer, double precision, integer)
  to anon, authenticated, service_role;
grant execute on function appkit.rate_limit_check(text, integer, double precision, integer)
  to anon, authenticated, service_role;
grant execute on function appkit.rate_limit_reset(text) to service_role;
grant execute on function appkit.rate_limit_purge() to service_role;
