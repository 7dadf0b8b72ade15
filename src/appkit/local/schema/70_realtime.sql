-- appkit's realtime service: the pieces it needs on top of Supabase's realtime schema.
-- Idempotent: every statement may run again on an existing database.

-- Database-originated broadcasts (realtime.send / realtime.broadcast_changes) are rows
-- in realtime.messages; the service reads them from the same logical-decoding stream as
-- postgres_changes, through this publication of its own (supabase_realtime stays the
-- user's publication, exactly as on Supabase).
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'appkit_realtime_messages') then
    create publication appkit_realtime_messages for table realtime.messages with (publish = 'insert');
  end if;
end
$$;

-- (earlier versions polled the slot and were woken by a trigger; the service now streams)
drop trigger if exists appkit_realtime_wake on realtime.messages;
drop function if exists realtime.appkit_wake();

-- Which of the given JWT claim sets may SELECT the row of `rel` whose primary key is
-- (pk_cols) = (pk_vals): evaluated as each subscriber's role with request.jwt.claims set,
-- so the table's RLS policies decide (as Supabase Realtime does). One call per change;
-- the statement is prepared once per call (its plan is reused while the role is the
-- same). `claims` is one JSON array of claim sets: a jsonb[] parameter of a hundred
-- elements costs the client ~10x more to send. A policy that raises fails the whole
-- call: the service then asks per claim set.
drop function if exists realtime.appkit_visible_to(regclass, text[], regtype[], text[], jsonb[]);
create or replace function realtime.appkit_visible_to(
  rel regclass, pk_cols text[], pk_types regtype[], pk_vals text[], claims jsonb
) returns boolean[] language plpgsql as $$
declare
  result boolean[] := '{}';
  cond text;
  c jsonb;
  ok boolean;
  claim_role text;
  current text;
begin
  select string_agg(format('%I = %L::%s', pk_cols[i], pk_vals[i], pk_types[i]), ' and ')
    into cond from generate_subscripts(pk_cols, 1) as i;
  if cond is null then
    cond := 'false';
  end if;
  if exists (select 1 from pg_prepared_statements where name = 'appkit_realtime_rls') then
    deallocate appkit_realtime_rls;
  end if;
  execute format('prepare appkit_realtime_rls as select exists (select 1 from %s where %s)', rel, cond);
  for c in select jsonb_array_elements(claims) loop
    claim_role := coalesce(c ->> 'role', 'anon');
    if current is distinct from claim_role then  -- subscribers mostly share a role
      perform set_config('role', claim_role, true);
      current := claim_role;
    end if;
    perform set_config('request.jwt.claims', c::text, true);
    execute 'execute appkit_realtime_rls' into ok;
    result := result || coalesce(ok, false);
  end loop;
  perform set_config('role', 'none', true);
  deallocate appkit_realtime_rls;
  return result;
end
$$;
revoke all on function realtime.appkit_visible_to(regclass, text[], regtype[], text[], jsonb) from public;

drop function if exists realtime.appkit_wait_for_wal(pg_lsn, float8, float8);
