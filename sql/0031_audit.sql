-- Audit log: trigger-based, append-only. appkit's org tables (0010-0012) are always audited;
-- any other table opts in with
--   select appkit.audit_table('public.notes');
-- Each entry records who (auth.uid() and the JWT role), what (action, table, primary key, the
-- old/new row; for an update only the changed columns), the org when the row has one, the
-- request id and client IP from PostgREST's request.headers when present, and when.
-- No API role can insert, update or delete entries; org admins read their org's entries
-- (RLS), the service role reads all and purges old ones with appkit.audit_purge().

create table appkit.audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor uuid,
  role text,
  action text not null check (action in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
  table_schema text not null,
  table_name text not null,
  pk jsonb,
  old jsonb,
  new jsonb,
  org_id uuid,
  request_id text,
  ip text,
  txid bigint not null default txid_current()
);
comment on table appkit.audit_log is
  'Append-only audit entries written by appkit.audit_row(); org admins read their org''s, the service role all.';
create index audit_log_org_id on appkit.audit_log (org_id, id) where org_id is not null;
create index audit_log_at on appkit.audit_log using brin (at);

alter table appkit.audit_log enable row level security;
revoke all on table appkit.audit_log from public, anon, authenticated, service_role;
grant select on table appkit.audit_log to authenticated, service_role;

-- org admins (and owners) read their orgs' entries; users nothing else
create policy audit_log_org_admins on appkit.audit_log for select to authenticated
  using (org_id in (select appkit.org_ids_with_role('admin')));

-- The trigger: TG_ARGV[0] the primary-key columns (comma-separated), TG_ARGV[1] the org column
-- ('' when none), TG_ARGV[2] columns left out of old/new (comma-separated).
create or replace function appkit.audit_row()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
  pk_cols text[] := string_to_array(nullif(tg_argv[0], ''), ',');
  org_col text := nullif(tg_argv[1], '');
  skip text[] := string_to_array(nullif(tg_argv[2], ''), ',');
  request_id text := coalesce(headers ->> 'x-request-id', headers ->> 'sb-request-id');
  ip text := coalesce(nullif(trim(split_part(headers ->> 'x-forwarded-for', ',', 1)), ''), headers ->> 'x-real-ip');
  full_row jsonb;
  old_row jsonb;
  new_row jsonb;
  diff_old jsonb;
  diff_new jsonb;
  pk jsonb;
begin
  if tg_op = 'TRUNCATE' then
    insert into appkit.audit_log (actor, role, action, table_schema, table_name, request_id, ip)
    values ((claims ->> 'sub')::uuid, coalesce(claims ->> 'role', session_user), tg_op, tg_table_schema,
            tg_table_name, request_id, ip);
    return null;
  end if;
  if tg_op = 'DELETE' then
    full_row := to_jsonb(old);
    old_row := full_row;
  else
    full_row := to_jsonb(new);
    new_row := full_row;
    if tg_op = 'UPDATE' then
      old_row := to_jsonb(old);
    end if;
  end if;
  if skip is not null then
    old_row := old_row - skip;
    new_row := new_row - skip;
  end if;
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value)
      into diff_old, diff_new
      from jsonb_each(new_row) n join jsonb_each(old_row) o on o.key = n.key
     where n.value is distinct from o.value;
    if diff_new is null then
      return null;  -- nothing changed (or only left-out columns)
    end if;
    old_row := diff_old;
    new_row := diff_new;
  end if;
  if cardinality(pk_cols) = 1 then
    pk := jsonb_build_object(pk_cols[1], full_row -> pk_cols[1]);
  elsif pk_cols is not null then
    select jsonb_object_agg(c, full_row -> c) into pk from unnest(pk_cols) c;
  end if;
  insert into appkit.audit_log (actor, role, action, table_schema, table_name, pk, old, new, org_id, request_id, ip)
  values ((claims ->> 'sub')::uuid, coalesce(claims ->> 'role', session_user), tg_op, tg_table_schema, tg_table_name,
          pk, old_row, new_row, (full_row ->> org_col)::uuid, request_id, ip);
  return null;
end;
$$;
comment on function appkit.audit_row() is 'Trigger function of appkit.audit_table(); writes one appkit.audit_log entry per row.';
revoke execute on function appkit.audit_row() from public;

-- Start auditing a table (run it as the table's owner, e.g. in a migration). `org_column`
-- defaults to org_id when the table has one; `exclude` columns (secrets, large blobs) are left
-- out of old/new. Calling it again replaces the table's audit triggers.
create or replace function appkit.audit_table(target regclass, org_column text default null,
                                              exclude text[] default '{}')
returns void
language plpgsql
set search_path = ''
as $$
declare
  pk_cols text;
  org_col text := org_column;
  tbl text := target::text;
begin
  if (select c.relkind from pg_catalog.pg_class c where c.oid = target) not in ('r', 'p') then
    raise exception '% is not a table', tbl using errcode = '42809';
  end if;
  if target = 'appkit.audit_log'::regclass then
    raise exception 'the audit log does not audit itself' using errcode = '42809';
  end if;
  select string_agg(a.attname, ',' order by array_position(i.indkey::int2[], a.attnum))
    into pk_cols
    from pg_catalog.pg_index i
    join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey::int2[])
   where i.indrelid = target and i.indisprimary;
  if org_col is null and exists (select 1 from pg_catalog.pg_attribute a
                                  where a.attrelid = target and a.attname = 'org_id' and not a.attisdropped) then
    org_col := 'org_id';
  end if;
  if org_col is not null and not exists (select 1 from pg_catalog.pg_attribute a
                                          where a.attrelid = target and a.attname = org_col
                                            and a.attnum > 0 and not a.attisdropped) then
    raise exception 'column % of % does not exist', org_col, tbl using errcode = '42703';
  end if;
  if exists (select 1 from unnest(coalesce(exclude, '{}')) x(c) where position(',' in x.c) > 0) then
    raise exception 'excluded column names may not contain commas' using errcode = '22023';
  end if;
  execute format('drop trigger if exists appkit_audit on %s', tbl);
  execute format('drop trigger if exists appkit_audit_truncate on %s', tbl);
  execute format('create trigger appkit_audit after insert or update or delete on %s for each row '
                 'execute function appkit.audit_row(%L, %L, %L)',
                 tbl, coalesce(pk_cols, ''), coalesce(org_col, ''), array_to_string(coalesce(exclude, '{}'), ','));
  execute format('create trigger appkit_audit_truncate after truncate on %s for each statement '
                 'execute function appkit.audit_row()', tbl);
end;
$$;
comment on function appkit.audit_table(regclass, text, text[]) is
  'Audit inserts, updates, deletes and truncates of a table into appkit.audit_log.';

create or replace function appkit.unaudit_table(target regclass)
returns void
language plpgsql
set search_path = ''
as $$
begin
  execute format('drop trigger if exists appkit_audit on %s', target::text);
  execute format('drop trigger if exists appkit_audit_truncate on %s', target::text);
end;
$$;
comment on function appkit.unaudit_table(regclass) is 'Stop auditing a table (its past entries stay).';

-- Which tables are audited (appkit audit's CLI and the docs read this).
create or replace function appkit.audited_tables()
returns table (table_schema text, table_name text)
language sql
stable
set search_path = ''
as $$
  select n.nspname::text, c.relname::text
    from pg_catalog.pg_trigger t
    join pg_catalog.pg_class c on c.oid = t.tgrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where t.tgname = 'appkit_audit' and not t.tgisinternal
   order by 1, 2
$$;

-- Retention: delete entries older than `older_than`; returns how many (service role).
create or replace function appkit.audit_purge(older_than interval)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  n bigint;
begin
  if older_than is null or older_than < interval '0' then
    raise exception 'older_than must be a non-negative interval' using errcode = '22023';
  end if;
  delete from appkit.audit_log where at < now() - older_than;
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function appkit.audit_purge(interval) is 'Delete audit entries older than the interval (retention).';

revoke execute on function appkit.audit_table(regclass, text, text[]) from public;
revoke execute on function appkit.unaudit_table(regclass) from public;
revoke execute on function appkit.audited_tables() from public;
revoke execute on function appkit.audit_purge(interval) from public;
grant execute on function appkit.audited_tables() to service_role;
grant execute on function appkit.audit_purge(interval) to service_role;

-- appkit's own org tables, always (invitation tokens are stored hashed, and still left out).
select appkit.audit_table('appkit.organizations', 'id');
select appkit.audit_table('appkit.memberships', 'org_id');
select appkit.audit_table('appkit.invitations', 'org_id', '{token_hash}');
