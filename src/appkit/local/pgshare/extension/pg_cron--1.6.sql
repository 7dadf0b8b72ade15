-- appkit emulation of pg_cron 1.6: pg_cron's tables, columns, functions, grants and row-level
-- security, written in SQL and PL/pgSQL. The local stack's scheduler (appkit/local/cron.py)
-- reads cron.job, runs due jobs as their username in their database, and records each run
-- in cron.job_run_details. Objects are created in schema cron whatever WITH SCHEMA says
-- (none, extensions, pg_catalog or cron are all seen in Supabase projects).

do $$
begin
  -- `with schema cron` names a schema the project created first; else the extension makes it
  if to_regnamespace('cron') is null then
    create schema cron;
  end if;
end
$$;
create sequence cron.jobid_seq;
create sequence cron.runid_seq;

create table cron.job (
  jobid bigint primary key default pg_catalog.nextval('cron.jobid_seq'),
  schedule text not null,
  command text not null,
  nodename text not null default 'localhost',
  nodeport int not null default pg_catalog.current_setting('port')::int,
  database text not null default pg_catalog.current_database(),
  username text not null default current_user,
  active boolean not null default true,
  jobname text
);
create unique index jobname_username_idx on cron.job (jobname, username);
alter table cron.job add constraint jobname_username_uniq unique using index jobname_username_idx;

create table cron.job_run_details (
  jobid bigint,
  runid bigint primary key default pg_catalog.nextval('cron.runid_seq'),
  job_pid integer,
  database text,
  username text,
  command text,
  status text,
  return_message text,
  start_time timestamptz,
  end_time timestamptz
);

-- pg_cron's grants and policies. cron.schedule & co. are SQL here (security invoker), so the
-- rows a role may write are its own: writes are granted and the same policy limits them.
grant select on cron.job to public;
grant insert, update, delete on cron.job to public;
grant usage, select on sequence cron.jobid_seq to public;
grant select on sequence cron.runid_seq to public;
alter table cron.job enable row level security;
create policy cron_job_policy on cron.job using (username operator(pg_catalog.=) current_user);
grant select, delete on cron.job_run_details to public;
alter table cron.job_run_details enable row level security;
create policy cron_job_run_details_policy on cron.job_run_details
  using (username operator(pg_catalog.=) current_user);

select pg_catalog.pg_extension_config_dump('cron.job', '');
select pg_catalog.pg_extension_config_dump('cron.jobid_seq', '');
select pg_catalog.pg_extension_config_dump('cron.job_run_details', '');
select pg_catalog.pg_extension_config_dump('cron.runid_seq', '');

-- pg_cron's schedule grammar (Vixie cron as pg_cron parses it): five fields of numbers, names
-- (jan-dec, sun-sat), ranges, lists and steps, '$' for the last day of the month, the @hourly
-- style macros, or '[1-59] seconds'. Mirrors appkit/local/cronspec.py, which a test compares.
create function cron._appkit_schedule_is_valid(schedule text) returns boolean
language plpgsql immutable parallel safe set search_path = pg_catalog as $$
declare
  s text := lower(schedule);
  lo int[] := '{0,0,1,1,0}';
  hi int[] := '{59,23,31,12,7}';
  months text[] := '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}';
  dows text[] := '{sun,mon,tue,wed,thu,fri,sat}';
  fields text[];
  m text[];
  item text;
  f int;
  a int;
  b int;
  step int;
begin
  if schedule is null then
    return false;
  end if;
  m := regexp_match(s, '^\s*([0-9]+)\s*seconds?\s*$');
  if m is not null then
    return length(m[1]) <= 9 and m[1]::int between 1 and 59;
  end if;
  s := btrim(s, E' \t\n\r');
  if left(s, 1) = '@' then
    return substr(split_part(regexp_replace(s, '\s.*$', ''), ' ', 1), 2)
      in ('reboot', 'restart', 'yearly', 'annually', 'monthly', 'weekly', 'daily', 'midnight', 'hourly');
  end if;
  fields := regexp_split_to_array(s, '\s+');
  if coalesce(array_length(fields, 1), 0) <> 5 then
    return false;
  end if;
  if fields[3] = '$' then
    fields[3] := '*';
  end if;
  for f in 1 .. 5 loop
    foreach item in array string_to_array(fields[f], ',') loop
      m := regexp_match(item, '^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/([0-9]+))?$');
      if m is null or (m[1] = '*' and m[2] is not null) or (m[1] <> '*' and m[2] is null and m[3] is not null)
         or length(coalesce(m[3], '')) > 9 then
        return false;
      end if;
      a := case when m[1] = '*' then lo[f]
                when m[1] ~ '^[0-9]{1,9}$' then m[1]::int
                when f = 4 then array_position(months, m[1])
                when f = 5 then array_position(dows, m[1]) - 1 end;
      b := case when m[1] = '*' then hi[f]
                when m[2] is null then a
                when m[2] ~ '^[0-9]{1,9}$' then m[2]::int
                when f = 4 then array_position(months, m[2])
                when f = 5 then array_position(dows, m[2]) - 1 end;
      step := coalesce(m[3]::int, 1);
      if a is null or b is null or a < lo[f] or a > hi[f] or b < lo[f] or b > hi[f]
         or step < 1 or step > hi[f] then
        return false;
      end if;
    end loop;
  end loop;
  return true;
end
$$;

-- rejects what pg_cron rejects, also for rows written to cron.job directly
create function cron._appkit_check_job() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  if not cron._appkit_schedule_is_valid(new.schedule) then
    raise exception 'invalid schedule: %', new.schedule using errcode = '22023',
      hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
  return new;
end
$$;
create trigger cron_job_check before insert or update on cron.job
  for each row execute function cron._appkit_check_job();

-- tells the stack's scheduler to reload the jobs (pg_cron's own name for its trigger)
create function cron.job_cache_invalidate() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  perform pg_notify('appkit_cron', current_database());
  return null;
end
$$;
comment on function cron.job_cache_invalidate() is 'invalidate job cache';
create trigger cron_job_cache_invalidate after insert or update or delete or truncate on cron.job
  for each statement execute function cron.job_cache_invalidate();

-- the role a job will run as must exist and may log in; the database must exist and the role
-- must be allowed to connect to it (pg_cron's checks, its messages)
create function cron._appkit_check_target(database text, username text) returns void
language plpgsql stable set search_path = pg_catalog as $$
declare
  can_login boolean;
begin
  select rolcanlogin into can_login from pg_roles where rolname = username;
  if not found then
    raise exception 'role "%" does not exist', username;
  end if;
  if not exists (select 1 from pg_database where datname = database) then
    raise exception 'database "%" does not exist', database using errcode = '3D000';
  end if;
  if not has_database_privilege(username, database, 'CONNECT') then
    raise exception 'User % does not have CONNECT privilege on %', username, database;
  end if;
end
$$;

create function cron.schedule(schedule text, command text) returns bigint
language plpgsql strict set search_path = pg_catalog as $$
declare
  id bigint;
begin
  insert into cron.job (schedule, command) values ($1, $2) returning jobid into id;
  return id;
end
$$;
comment on function cron.schedule(text, text) is 'schedule a pg_cron job';

create function cron.schedule_in_database(job_name text, schedule text, command text, database text,
                                          username text default null, active boolean default true)
returns bigint language plpgsql set search_path = pg_catalog as $$
declare
  id bigint;
  who text := coalesce($5, current_user);
begin
  if $1 is null then raise exception 'job_name can not be NULL'; end if;
  if $2 is null then raise exception 'schedule can not be NULL'; end if;
  if $3 is null then raise exception 'command can not be NULL'; end if;
  if not cron._appkit_schedule_is_valid($2) then
    raise exception 'invalid schedule: %', $2 using errcode = '22023',
      hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
  if $5 is not null then
    if not (select rolsuper from pg_roles where rolname = current_user) then
      raise exception 'must be superuser to create a job for another role';
    end if;
    if not exists (select 1 from pg_roles where rolname = $5) then
      raise exception 'role "%" does not exist', $5;
    end if;
    if not (select rolcanlogin from pg_roles where rolname = $5) then
      raise exception 'role "%" can not log in', $5
        using detail = 'Jobs may only be run by roles that have the LOGIN attribute.';
    end if;
  end if;
  perform cron._appkit_check_target(coalesce($4, current_database()), who);
  insert into cron.job as j (schedule, command, database, username, active, jobname)
  values ($2, $3, coalesce($4, current_database()), who, coalesce($6, true), $1)
  on conflict on constraint jobname_username_uniq do update
    set schedule = excluded.schedule, command = excluded.command, database = excluded.database
  returning j.jobid into id;
  return id;
end
$$;
comment on function cron.schedule_in_database(text, text, text, text, text, boolean) is 'schedule a pg_cron job';
revoke all on function cron.schedule_in_database(text, text, text, text, text, boolean) from public;

create function cron.schedule(job_name text, schedule text, command text) returns bigint
language plpgsql set search_path = pg_catalog as $$
declare
  id bigint;
begin
  if $1 is null then raise exception 'job_name can not be NULL'; end if;
  if $2 is null then raise exception 'schedule can not be NULL'; end if;
  if $3 is null then raise exception 'command can not be NULL'; end if;
  insert into cron.job as j (schedule, command, jobname) values ($2, $3, $1)
  on conflict on constraint jobname_username_uniq do update
    set schedule = excluded.schedule, command = excluded.command, database = excluded.database
  returning j.jobid into id;
  return id;
end
$$;
comment on function cron.schedule(text, text, text) is 'schedule a pg_cron job';

create function cron.unschedule(job_id bigint) returns boolean
language plpgsql strict set search_path = pg_catalog as $$
begin
  delete from cron.job where jobid = $1;
  if not found then
    raise exception 'could not find valid entry for job %', $1;
  end if;
  return true;
end
$$;
comment on function cron.unschedule(bigint) is 'unschedule a pg_cron job';

create function cron.unschedule(job_name text) returns boolean
language plpgsql set search_path = pg_catalog as $$
begin
  if $1 is null then raise exception 'job_name can not be NULL'; end if;
  delete from cron.job where jobname = $1 and username = current_user;
  if not found then
    raise exception 'could not find valid entry for job ''%''', $1;
  end if;
  return true;
end
$$;
comment on function cron.unschedule(text) is 'unschedule a pg_cron job';

create function cron.alter_job(job_id bigint, schedule text default null, command text default null,
                               database text default null, username text default null,
                               active boolean default null)
returns void language plpgsql set search_path = pg_catalog as $$
declare
  su boolean := (select rolsuper from pg_roles where rolname = current_user);
  who text;
begin
  if $1 is null then raise exception 'job_id can not be NULL'; end if;
  if $5 is not null then
    if not su then
      raise exception 'must be superuser to alter username';
    end if;
    if not exists (select 1 from pg_roles where rolname = $5) then
      raise exception 'role "%" does not exist', $5;
    end if;
    if not (select rolcanlogin from pg_roles where rolname = $5) then
      raise exception 'role "%" can not log in', $5
        using detail = 'Jobs may only be run by roles that have the LOGIN attribute.';
    end if;
  end if;
  if $4 is not null then
    perform cron._appkit_check_target($4, coalesce($5, current_user));
  end if;
  if $2 is not null and not cron._appkit_schedule_is_valid($2) then
    raise exception 'invalid schedule: %', $2 using errcode = '22023',
      hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
  if $2 is null and $3 is null and $4 is null and $5 is null and $6 is null then
    raise exception 'no updates specified'
      using hint = 'You must specify at least one job attribute to change when calling alter_job';
  end if;
  update cron.job j set schedule = coalesce($2, j.schedule), command = coalesce($3, j.command),
    database = coalesce($4, j.database), username = coalesce($5, j.username), active = coalesce($6, j.active)
  where j.jobid = $1 and (su or j.username = current_user);
  if not found then
    raise exception 'Job % does not exist or you don''t own it', $1;
  end if;
end
$$;
comment on function cron.alter_job(bigint, text, text, text, text, boolean)
  is 'Alter the job identified by job_id. Any option left as NULL will not be modified.';
revoke all on function cron.alter_job(bigint, text, text, text, text, boolean) from public;

-- the scheduler learns that jobs can now be scheduled
select pg_catalog.pg_notify('appkit_cron', pg_catalog.current_database());
