-- Schema "extensions": where Supabase installs extensions. The embedded server has no
-- uuid-ossp / pgcrypto; appkit ships compatible shim extensions of the same names (see
-- appkit/local/pgshare/extension) so that `create extension "uuid-ossp" with schema extensions`
-- in a Supabase migration applies unchanged.
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
alter default privileges in schema extensions grant execute on functions to postgres, anon, authenticated, service_role;

-- The extensions a fresh Supabase project has in schema extensions (pg_graphql and
-- supabase_vault need C modules the embedded server does not ship; see docs/project.md).
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
do $$
begin
  -- contrib; preloaded by the embedded server (shared_preload_libraries) as on Supabase
  if exists (select 1 from pg_available_extensions where name = 'pg_stat_statements') then
    create extension if not exists pg_stat_statements with schema extensions;
  end if;
end
$$;

-- As on Supabase, the owner roles find extensions' functions without a schema prefix:
-- `default uuid_generate_v4()` in a migration, `crypt(...)` in a seed file. Set for this
-- database only, so an external server's other databases are untouched.
do $$
begin
  execute format('alter role postgres in database %I set search_path to "$user", public, extensions',
                 current_database());
  execute format('alter role supabase_admin in database %I set search_path to public, extensions',
                 current_database());
end
$$;

create schema if not exists graphql_public;
grant usage on schema graphql_public to postgres, anon, authenticated, service_role;

-- Schemas every (older) Supabase project has, so the `create extension if not exists pg_graphql
-- with schema graphql` / `pgsodium with schema pgsodium` lines of `supabase db dump` apply
-- (appkit's stand-ins for both live in appkit/local/pgshare/extension; docs/extensions.md).
create schema if not exists graphql;
grant usage on schema graphql to postgres, anon, authenticated, service_role;
create schema if not exists pgsodium;

-- Supabase's public schema: API roles may use it, and everything postgres (or
-- supabase_admin) creates in it is granted to them by default; RLS then decides.
grant usage on schema public to postgres, anon, authenticated, service_role;
grant create on schema public to postgres;
alter default privileges for role postgres in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;
