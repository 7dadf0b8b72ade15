-- One violation of each advisor lint, in a scratch database (tests/integration/test_advisors.py).
-- The few Supabase pieces the lints look at, cut down to what they read:
create schema auth;
create table auth.users (id uuid primary key, email text unique, raw_user_meta_data jsonb);
alter table auth.users enable row level security;
create function auth.uid() returns uuid language sql stable set search_path = ''
  as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
create function auth.jwt() returns jsonb language sql stable set search_path = ''
  as $$ select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
create schema storage;
create table storage.buckets (id text primary key, name text not null, public boolean not null default false);
create table storage.objects (id uuid primary key default gen_random_uuid(), bucket_id text references storage.buckets (id),
                              name text);
alter table storage.objects enable row level security;

-- 0001 unindexed_foreign_keys (children.parent_id has no index)
create table public.parents (id int primary key);
alter table public.parents enable row level security;
create policy parents_read on public.parents for select to authenticated using (true);
create table public.children (id int primary key, parent_id int references public.parents (id));
alter table public.children enable row level security;
create policy children_read on public.children for select to authenticated using (true);

-- 0002 auth_users_exposed + 0010 security_definer_view
create view public.user_emails as select id, email from auth.users;
grant select on public.user_emails to anon;

-- 0003 auth_rls_initplan, 0005 unused_index, 0006 multiple_permissive_policies,
-- 0015 rls_references_user_metadata, 0024 rls_policy_always_true
create table public.notes (id int primary key, owner uuid, body text);
create index notes_owner_idx on public.notes (owner);
alter table public.notes enable row level security;
create policy own_notes on public.notes for select to authenticated using (owner = auth.uid());
create policy all_notes on public.notes for select to authenticated using (true);
create policy admins_edit on public.notes for update to authenticated
  using ((select auth.jwt()) -> 'user_metadata' ->> 'role' = 'admin');
create policy anyone_deletes on public.notes for delete to anon using (true);

-- 0004 no_primary_key, 0009 duplicate_index
create table public.logs (line text);
alter table public.logs enable row level security;
create policy logs_read on public.logs for select to authenticated using (true);
create index logs_line_a on public.logs (line);
create index logs_line_b on public.logs (line);

-- 0007 policy_exists_rls_disabled
create table public.drafts (id int primary key);
create policy drafts_read on public.drafts for select to authenticated using (true);

-- 0008 rls_enabled_no_policy
create table public.vault_items (id int primary key);
alter table public.vault_items enable row level security;

-- 0011 function_search_path_mutable
create function public.add_one(i int) returns int language sql immutable as 'select i + 1';

-- 0013 rls_disabled_in_public + 0023 sensitive_columns_exposed
create table public.accounts (id int primary key, email text, password text, api_key text);
grant select on public.accounts to anon;

-- 0014 extension_in_public + 0022 extension_versions_outdated
create extension hstore version '1.4' schema public;

-- 0016 materialized_view_in_api
create materialized view public.note_counts as select count(*) as n from public.notes;
grant select on public.note_counts to authenticated;

-- 0017 foreign_table_in_api
create foreign data wrapper appkit_test_fdw;
create server appkit_test_server foreign data wrapper appkit_test_fdw;
create foreign table public.remote_items (id int) server appkit_test_server;
grant select on public.remote_items to anon;

-- 0018 unsupported_reg_types
create table public.hooks (id int primary key, fn regproc);
alter table public.hooks enable row level security;
create policy hooks_read on public.hooks for select to authenticated using (true);

-- 0019 insecure_queue_exposed_in_api (pgmq_public is exposed: see the database's pgrst.db_schemas)
create schema pgmq;
create table pgmq.q_jobs (msg_id bigint primary key, message jsonb);
grant select on pgmq.q_jobs to anon;

-- 0020 table_bloat: 600k rows deleted down to 100, autovacuum off, then analysed
create table public.bloated (id int primary key, pad text) with (autovacuum_enabled = false);
alter table public.bloated enable row level security;
create policy bloated_read on public.bloated for select to authenticated using (true);
insert into public.bloated select g, repeat('x', 24) from generate_series(1, 600000) g;
delete from public.bloated where id > 100;
analyze public.bloated;

-- 0021 fkey_to_auth_unique
create table public.profiles (id uuid primary key, email text references auth.users (email));
create index profiles_email_idx on public.profiles (email);
alter table public.profiles enable row level security;
create policy profiles_read on public.profiles for select to authenticated using (true);

-- 0025 public_bucket_allows_listing
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);
create policy "read avatars" on storage.objects for select using (bucket_id = 'avatars');

-- 0028 anon_security_definer_function_executable + 0029 authenticated_... (EXECUTE is granted to PUBLIC)
create function public.reset_counts() returns void language sql security definer set search_path = '' as 'select';
