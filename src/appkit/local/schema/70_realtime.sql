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
--
-- `change_xid` is the transaction that made the change. Its commit is in the WAL once the change
-- is decoded, but Postgres makes a transaction visible to new snapshots only a moment
-- after flushing its commit record: checked in that moment, the policies would see the
-- row as it was before (or not at all). So the check first waits, briefly and in the
-- database, until a fresh snapshot includes the transaction.
drop function if exists realtime.appkit_visible_to(regclass, text[], regtype[], text[], jsonb[]);
drop function if exists realtime.appkit_visible_to(regclass, text[], regtype[], text[], jsonb);
create or replace function realtime.appkit_visible_to(
  rel regclass, pk_cols text[], pk_types regtype[], pk_vals text[], claims jsonb, change_xid bigint
) returns boolean[] language plpgsql as $$
declare
  result boolean[] := '{}';
  cond text;
  c jsonb;
  ok boolean;
  claim_role text;
  current text;
  snap pg_snapshot;
  next_xid bigint;
begin
  if change_xid is not null and change_xid > 0 then
    for i in 1..2000 loop  -- at most ~1 s; in practice the first or second look
      snap := pg_current_snapshot();
      next_xid := pg_snapshot_xmax(snap)::text::bigint;
      -- the full (epoch-qualified) id of the recent 32-bit `change_xid`
      exit when pg_visible_in_snapshot(
        (next_xid - (((next_xid & 4294967295) - change_xid) & 4294967295))::text::xid8, snap);
      perform pg_sleep(0.0005);
    end loop;
  end if;
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
revoke all on function realtime.appkit_visible_to(regclass, text[], regtype[], text[], jsonb, bigint) from public;

drop function if exists realtime.appkit_wait_for_wal(pg_lsn, float8, float8);
