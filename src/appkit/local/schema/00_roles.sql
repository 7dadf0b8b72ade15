-- Supabase's database roles, with the attributes the Supabase Postgres image gives them.
-- Idempotent: every statement may run again on an existing database.
do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('anon',                       'nologin noinherit'),
      ('authenticated',              'nologin noinherit'),
      ('service_role',               'nologin noinherit bypassrls'),
      ('authenticator',              'login noinherit'),
      ('supabase_admin',             'login superuser createdb createrole replication bypassrls'),
      ('supabase_auth_admin',        'login noinherit createrole'),
      ('supabase_storage_admin',     'login noinherit createrole'),
      ('supabase_realtime_admin',    'nologin noinherit'),
      ('supabase_replication_admin', 'login replication'),
      ('supabase_read_only_user',    'login bypassrls'),
      ('supabase_etl_admin',         'login replication'),
      ('dashboard_user',             'nologin createdb createrole replication'),
      ('pgbouncer',                  'login'),
      ('pgsodium_keyholder',         'nologin noinherit'),
      ('pgsodium_keyiduser',         'nologin noinherit'),
      ('pgsodium_keymaker',          'nologin noinherit')
    ) as t(name, attrs)
  loop
    if not exists (select 1 from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attrs);
    end if;
  end loop;
end
$$;

-- Locally every login role shares the postgres password, as in the Supabase CLI's stack.
alter role authenticator with password 'postgres';
alter role supabase_auth_admin with password 'postgres';
alter role supabase_storage_admin with password 'postgres';
alter role supabase_admin with password 'postgres';

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres with admin option;
grant supabase_realtime_admin to postgres;
grant pg_read_all_data to supabase_read_only_user;

alter role authenticator set statement_timeout = '8s';
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role supabase_auth_admin set search_path = auth;
alter role supabase_storage_admin set search_path = storage;
