-- Advisor lints: one named block per lint, each returning (detail, metadata, cache_key) rows.
--
-- The blocks run in one read-only transaction with an empty search_path, after the
-- runner has set two settings:
--   appkit_lint.excluded  the schemas Supabase's own services own (a text[] literal)
--   appkit_lint.exposed   the schemas the REST API serves: pgrst.db_schemas, else public
-- Names, detail texts, metadata and cache keys follow Supabase's advisors (splinter), so
-- findings line up with `supabase db advisors` and the dashboard's advisors.

-- name: exposed_schemas
-- The API schemas PostgREST serves (NULL when pgrst.db_schemas is not set).
select pg_catalog.current_setting('pgrst.db_schemas', true) as db_schemas;

-- name: has_storage
-- Whether storage.buckets exists (lint 0025 reads it).
select pg_catalog.to_regclass('storage.buckets') is not null as present;

-- name: unindexed_foreign_keys
-- Foreign keys whose columns are not the leading columns of a valid index.
select
    pg_catalog.format(
        'Table `%s.%s` has a foreign key `%s` without a covering index. This can lead to suboptimal query performance.',
        n.nspname, t.relname, k.conname
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', n.nspname, 'name', t.relname, 'type', 'table',
        'fkey_name', k.conname, 'fkey_columns', k.conkey
    ) as metadata,
    pg_catalog.format('unindexed_foreign_keys_%s_%s_%s', n.nspname, t.relname, k.conname) as cache_key
from pg_catalog.pg_constraint k
join pg_catalog.pg_class t on t.oid = k.conrelid
join pg_catalog.pg_namespace n on n.oid = t.relnamespace
where k.contype = 'f'
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'vault', 'extensions')
  and not exists (
      select from pg_catalog.pg_depend e where e.objid = t.oid and e.deptype = 'e')
  and not exists (
      select from pg_catalog.pg_index i
      where i.indrelid = t.oid
        and i.indisvalid
        and (i.indkey::int2[])[0:pg_catalog.cardinality(k.conkey) - 1] = k.conkey);

-- name: auth_users_exposed
-- Views and materialized views over auth.users that anon or authenticated can read.
with auth_users as (
    select c.oid, c.relrowsecurity
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'auth' and c.relname = 'users'
),
readers as (
    select distinct v.oid, v.relname, v.relkind, vn.nspname, u.relrowsecurity as users_rls,
           exists (select from pg_catalog.unnest(v.reloptions) o
                   where pg_catalog.lower(o) in ('security_invoker=1', 'security_invoker=true',
                                                 'security_invoker=yes', 'security_invoker=on')) as invoker
    from auth_users u
    join pg_catalog.pg_depend d on d.refobjid = u.oid and d.deptype = 'n'
    join pg_catalog.pg_rewrite r on r.oid = d.objid
    join pg_catalog.pg_class v on v.oid = r.ev_class
    join pg_catalog.pg_namespace vn on vn.oid = v.relnamespace
    where vn.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
      and v.relname <> '0002_auth_users_exposed'
      and (pg_catalog.has_table_privilege('anon', v.oid, 'SELECT')
           or pg_catalog.has_table_privilege('authenticated', v.oid, 'SELECT'))
)
select
    pg_catalog.format(
        'View/Materialized View "%s" in the public schema may expose `auth.users` data to anon or authenticated roles.',
        relname
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', nspname, 'name', relname, 'type', 'view',
        'exposed_to', array[case when pg_catalog.has_table_privilege('anon', oid, 'SELECT') then 'anon'
                                 else 'authenticated' end]
    ) as metadata,
    pg_catalog.format('auth_users_exposed_%s_%s', nspname, relname) as cache_key
from readers
where relkind = 'm'
   or (relkind = 'v' and not invoker)
   or (relkind = 'v' and invoker and not users_rls);

-- name: auth_rls_initplan
-- Policies that call auth.<fn>() or current_setting() per row instead of once, via (select ...).
with policies as (
    select n.nspname, c.relname, p.polname,
           pg_catalog.pg_get_expr(p.polqual, p.polrelid) as qual,
           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as with_check
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relrowsecurity
      -- realtime stays in: policies on realtime.messages are the user's own
      and n.nspname <> all (pg_catalog.array_remove(
              pg_catalog.current_setting('appkit_lint.excluded')::text[], 'realtime'))
),
per_row (pattern, wrapped) as (
    values ('%auth.uid()%', '%select auth.uid()%'),
           ('%auth.jwt()%', '%select auth.jwt()%'),
           ('%auth.role()%', '%select auth.role()%'),
           ('%auth.email()%', '%select auth.email()%'),
           ('%current\_setting(%)%', '%select current\_setting(%)%')
)
select
    pg_catalog.format(
        'Table `%s.%s` has a row level security policy `%s` that re-evaluates current_setting() or auth.<function>() for each row. This produces suboptimal query performance at scale. Resolve the issue by replacing `auth.<function>()` with `(select auth.<function>())`. See [docs](https://supabase.com/docs/guides/database/postgres/row-level-security#call-functions-with-select) for more info.',
        p.nspname, p.relname, p.polname
    ) as detail,
    pg_catalog.jsonb_build_object('schema', p.nspname, 'name', p.relname, 'type', 'table') as metadata,
    pg_catalog.format('auth_rls_init_plan_%s_%s_%s', p.nspname, p.relname, p.polname) as cache_key
from policies p
where exists (
    select from per_row w
    where (p.qual like w.pattern and pg_catalog.lower(p.qual) not like w.wrapped)
       or (p.with_check like w.pattern and pg_catalog.lower(p.with_check) not like w.wrapped)
);

-- name: no_primary_key
-- Ordinary tables without a primary key.
select
    pg_catalog.format('Table `%s.%s` does not have a primary key', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'table') as metadata,
    pg_catalog.format('no_primary_key_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e')
  and not exists (select from pg_catalog.pg_index i where i.indrelid = c.oid and i.indisprimary);

-- name: unused_index
-- Non-unique indexes that have never been scanned.
select
    pg_catalog.format('Index `%s` on table `%s.%s` has not been used', s.indexrelname, s.schemaname, s.relname)
        as detail,
    pg_catalog.jsonb_build_object('schema', s.schemaname, 'name', s.relname, 'type', 'table') as metadata,
    pg_catalog.format('unused_index_%s_%s_%s', s.schemaname, s.relname, s.indexrelname) as cache_key
from pg_catalog.pg_stat_user_indexes s
join pg_catalog.pg_index i on i.indexrelid = s.indexrelid
where s.idx_scan = 0
  and not i.indisunique
  and not i.indisprimary
  and s.schemaname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = s.relid and e.deptype = 'e');

-- name: multiple_permissive_policies
-- More than one permissive policy for the same role and action on a table.
with applied as (
    select n.nspname, c.relname, r.rolname, a.action, p.polname
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_roles r on r.oid = any (p.polroles) or p.polroles = array[0::oid]
    cross join lateral pg_catalog.unnest(case p.polcmd
        when 'r' then array['SELECT']
        when 'a' then array['INSERT']
        when 'w' then array['UPDATE']
        when 'd' then array['DELETE']
        when '*' then array['SELECT', 'INSERT', 'UPDATE', 'DELETE']
        else array['ERROR'] end) as a(action)
    where c.relkind = 'r'
      and p.polpermissive
      and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
      and r.rolname not like 'pg_%'
      and r.rolname not like 'supabase%admin'
      and not r.rolbypassrls
      and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e')
)
select
    pg_catalog.format(
        'Table `%s.%s` has multiple permissive policies for role `%s` for action `%s`. Policies include `%s`',
        nspname, relname, rolname, action, pg_catalog.array_agg(polname order by polname)
    ) as detail,
    pg_catalog.jsonb_build_object('schema', nspname, 'name', relname, 'type', 'table') as metadata,
    pg_catalog.format('multiple_permissive_policies_%s_%s_%s_%s', nspname, relname, rolname, action) as cache_key
from applied
group by nspname, relname, rolname, action
having pg_catalog.count(*) > 1;

-- name: policy_exists_rls_disabled
-- Tables that have policies while row level security is off (the policies do nothing).
select
    pg_catalog.format(
        'Table `%s.%s` has RLS policies but RLS is not enabled on the table. Policies include %s.',
        n.nspname, c.relname, pg_catalog.array_agg(p.polname order by p.polname)
    ) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'table') as metadata,
    pg_catalog.format('policy_exists_rls_disabled_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_policy p
join pg_catalog.pg_class c on c.oid = p.polrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
  and not c.relrowsecurity
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e')
group by n.nspname, c.relname;

-- name: rls_enabled_no_policy
-- Tables with row level security on and no policy at all (nobody but bypassers can read them).
select
    pg_catalog.format('Table `%s.%s` has RLS enabled, but no policies exist', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'table') as metadata,
    pg_catalog.format('rls_enabled_no_policy_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
  and c.relrowsecurity
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_policy p where p.polrelid = c.oid)
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e');

-- name: duplicate_index
-- Indexes on one table whose definitions are identical apart from their names.
with defs as (
    select n.nspname, t.relname, t.relkind, ix.relname as index_name,
           pg_catalog.replace(pg_catalog.pg_get_indexdef(ix.oid), ix.relname, '') as shape
    from pg_catalog.pg_index i
    join pg_catalog.pg_class ix on ix.oid = i.indexrelid
    join pg_catalog.pg_class t on t.oid = i.indrelid
    join pg_catalog.pg_namespace n on n.oid = t.relnamespace
    where t.relkind in ('r', 'm')
      and ix.relkind in ('i', 'I')
      and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
      and not exists (select from pg_catalog.pg_depend e where e.objid = t.oid and e.deptype = 'e')
)
select
    pg_catalog.format(
        'Table `%s.%s` has identical indexes %s. Drop all except one of them',
        nspname, relname, pg_catalog.array_agg(index_name order by index_name)
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', nspname, 'name', relname,
        'type', case relkind when 'r' then 'table' else 'materialized view' end,
        'indexes', pg_catalog.array_agg(index_name order by index_name)
    ) as metadata,
    pg_catalog.format('duplicate_index_%s_%s_%s', nspname, relname,
                      pg_catalog.array_agg(index_name order by index_name)) as cache_key
from defs
group by nspname, relkind, relname, shape
having pg_catalog.count(*) > 1;

-- name: security_definer_view
-- API views that run with their owner's rights (bypassing the caller's RLS).
select
    pg_catalog.format('View `%s.%s` is defined with the SECURITY DEFINER property', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'view') as metadata,
    pg_catalog.format('security_definer_view_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'v'
  and pg_catalog.current_setting('server_version_num')::int >= 150000  -- security_invoker: PG 15+
  and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
       or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e')
  and not exists (select from pg_catalog.unnest(c.reloptions) o
                  where pg_catalog.lower(o) in ('security_invoker=1', 'security_invoker=true',
                                                'security_invoker=yes', 'security_invoker=on'));

-- name: function_search_path_mutable
-- Functions without a fixed search_path (their name resolution depends on the caller).
select
    pg_catalog.format('Function `%s.%s` has a role mutable search_path', n.nspname, f.proname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', f.proname, 'type', 'function') as metadata,
    pg_catalog.format('function_search_path_mutable_%s_%s_%s', n.nspname, f.proname, pg_catalog.md5(f.prosrc))
        as cache_key
from pg_catalog.pg_proc f
join pg_catalog.pg_namespace n on n.oid = f.pronamespace
where n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = f.oid and e.deptype = 'e')
  and not exists (select from pg_catalog.unnest(f.proconfig) s where s like 'search_path=%');

-- name: rls_disabled_in_public
-- API tables readable by anon or authenticated with row level security off.
select
    pg_catalog.format('Table `%s.%s` is public, but RLS has not been enabled.', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'table') as metadata,
    pg_catalog.format('rls_disabled_in_public_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r'
  and not c.relrowsecurity
  and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
       or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[]);

-- name: extension_in_public
-- Extensions installed into the public schema (other than plpgsql).
select
    pg_catalog.format('Extension `%s` is installed in the public schema. Move it to another schema.', x.extname)
        as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', x.extname, 'type', 'extension') as metadata,
    pg_catalog.format('extension_in_public_%s', x.extname) as cache_key
from pg_catalog.pg_extension x
join pg_catalog.pg_namespace n on n.oid = x.extnamespace
where x.extname <> 'plpgsql'
  and n.nspname = 'public';

-- name: rls_references_user_metadata
-- Policies that trust user_metadata from the JWT (users can edit it themselves).
with policies as (
    select n.nspname, c.relname, p.polname,
           pg_catalog.pg_get_expr(p.polqual, p.polrelid) as qual,
           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as with_check
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
)
select
    pg_catalog.format(
        'Table `%s.%s` has a row level security policy `%s` that references Supabase Auth `user_metadata`. `user_metadata` is editable by end users and should never be used in a security context.',
        nspname, relname, polname
    ) as detail,
    pg_catalog.jsonb_build_object('schema', nspname, 'name', relname, 'type', 'table') as metadata,
    pg_catalog.format('rls_references_user_metadata_%s_%s_%s', nspname, relname, polname) as cache_key
from policies
where qual like '%auth.jwt()%user_metadata%'
   or qual like '%current_setting(%request.jwt.claims%)%user_metadata%'
   or with_check like '%auth.jwt()%user_metadata%'
   or with_check like '%current_setting(%request.jwt.claims%)%user_metadata%';

-- name: materialized_view_in_api
-- Materialized views (which cannot have RLS) readable through the API.
select
    pg_catalog.format('Materialized view `%s.%s` is selectable by anon or authenticated roles', n.nspname, c.relname)
        as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'materialized view') as metadata,
    pg_catalog.format('materialized_view_in_api_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'm'
  and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
       or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e');

-- name: foreign_table_in_api
-- Foreign tables (which cannot have RLS) readable through the API.
select
    pg_catalog.format('Foreign table `%s.%s` is accessible over APIs', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'foreign table') as metadata,
    pg_catalog.format('foreign_table_in_api_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'f'
  and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
       or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and not exists (select from pg_catalog.pg_depend e where e.objid = c.oid and e.deptype = 'e');

-- name: unsupported_reg_types
-- Columns of reg* types that pg_upgrade cannot carry over.
select
    pg_catalog.format('Table `%s.%s` has a column `%s` with unsupported reg* type `%s`.',
                      n.nspname, c.relname, a.attname, t.typname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'column', a.attname, 'type', 'table')
        as metadata,
    pg_catalog.format('unsupported_reg_types_%s_%s_%s', n.nspname, c.relname, a.attname) as cache_key
from pg_catalog.pg_attribute a
join pg_catalog.pg_class c on c.oid = a.attrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_type t on t.oid = a.atttypid
join pg_catalog.pg_namespace tn on tn.oid = t.typnamespace
where tn.nspname = 'pg_catalog'
  and t.typname in ('regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator',
                    'regproc', 'regprocedure')
  and n.nspname not in ('pg_catalog', 'information_schema', 'pgsodium');

-- name: insecure_queue_exposed_in_api
-- pgmq queue tables without RLS while the pgmq_public API schema is exposed.
select
    pg_catalog.format('Table `%s.%s` is public, but RLS has not been enabled.', n.nspname, c.relname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', 'table') as metadata,
    pg_catalog.format('rls_disabled_in_public_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'I')
  and not c.relrowsecurity
  and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
       or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
  and n.nspname = 'pgmq'
  and c.relname like 'q_%'
  and 'pgmq_public' = any (pg_catalog.current_setting('appkit_lint.exposed')::text[]);

-- name: table_bloat
-- Heap tables whose estimated size is over 70x what their rows need and waste over 20 MiB.
with stats as (
    -- per table: the average data width of a row and its null bitmap, from the planner's statistics
    select s.schemaname, s.tablename,
           pg_catalog.sum((1 - s.null_frac) * s.avg_width) as data_width,
           pg_catalog.max(s.null_frac) as max_null_frac,
           23 + 1 + pg_catalog.count(*) filter (where s.null_frac <> 0) / 8 as null_header
    from pg_catalog.pg_stats s
    group by s.schemaname, s.tablename
),
estimate as (
    select st.schemaname, st.tablename, c.relpages, c.reltuples,
           pg_catalog.current_setting('block_size')::numeric as block,
           -- tuple header (23 bytes, aligned to 4) + data, then aligned to 4 again
           (st.data_width + 24)::numeric as data_header,
           st.max_null_frac * (st.null_header + 4 - (case when st.null_header % 4 = 0 then 4
                                                          else st.null_header % 4 end)) as null_header_aligned
    from stats st
    join pg_catalog.pg_namespace n on n.nspname = st.schemaname and n.nspname <> 'information_schema'
    join pg_catalog.pg_class c on c.relnamespace = n.oid and c.relname = st.tablename
    where c.relkind = 'r'
      and c.relam = (select a.oid from pg_catalog.pg_am a where a.amname = 'heap')
),
expected as (
    select schemaname, tablename, relpages, block,
           pg_catalog.ceil(reltuples * ((data_header + 4 - (case when data_header % 4 = 0 then 4
                                                                 else data_header % 4 end))
                                        + null_header_aligned + 4) / (block - 20::float)) as pages
    from estimate
)
select
    pg_catalog.format('Table `%s`.`%s` has excessive bloat', schemaname, tablename) as detail,
    pg_catalog.jsonb_build_object('schema', schemaname, 'name', tablename, 'type', 'table') as metadata,
    pg_catalog.format('table_bloat_%s_%s', schemaname, tablename) as cache_key
from expected
where pg_catalog.round(case when pages = 0 then 0.0 else relpages / pages::numeric end, 1) > 70.0
  and (case when relpages < pages then 0 else (block * (relpages - pages)::bigint)::bigint end) > 20 * 1024 * 1024;

-- name: fkey_to_auth_unique
-- User foreign keys that reference a unique (not primary) key of an auth table.
select
    pg_catalog.format('Table `%s`.`%s` has a foreign key `%s` referencing an auth unique constraint',
                      n.nspname, t.relname, k.conname) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', t.relname, 'foreign_key', k.conname) as metadata,
    pg_catalog.format('fkey_to_auth_unique_%s_%s_%s', n.nspname, t.relname, k.conname) as cache_key
from pg_catalog.pg_constraint k
join pg_catalog.pg_class t on t.oid = k.conrelid
join pg_catalog.pg_namespace n on n.oid = t.relnamespace
join pg_catalog.pg_class r on r.oid = k.confrelid
join pg_catalog.pg_namespace rn on rn.oid = r.relnamespace
join pg_catalog.pg_index i on i.indexrelid = k.conindid
where k.contype = 'f'
  and rn.nspname = 'auth'
  and i.indisunique
  and not i.indisprimary;

-- name: extension_versions_outdated
-- Installed extensions not at their default version (when that version is still shipped).
select
    pg_catalog.format(
        'Extension `%s` is using version `%s` but version `%s` is available. Using outdated extension versions may expose the database to security vulnerabilities.',
        x.name, x.installed_version, x.default_version
    ) as detail,
    pg_catalog.jsonb_build_object('extension_name', x.name, 'installed_version', x.installed_version,
                                  'default_version', x.default_version) as metadata,
    pg_catalog.format('extension_versions_outdated_%s_%s', x.name, x.installed_version) as cache_key
from pg_catalog.pg_available_extensions x
where x.installed_version is not null
  and x.default_version is not null
  and x.installed_version <> x.default_version
  and exists (select from pg_catalog.pg_available_extension_versions v where v.name = x.name and v.installed);

-- name: sensitive_columns_exposed
-- API tables without RLS that hold columns named like credentials or personal data.
with sensitive (pattern) as (
    select pg_catalog.unnest(array[
        'password', 'passwd', 'pwd', 'passphrase', 'secret', 'secret_key', 'private_key', 'api_key', 'apikey',
        'auth_key', 'token', 'jwt', 'access_token', 'refresh_token', 'oauth_token', 'session_token',
        'bearer_token', 'auth_code', 'session_id', 'session_key', 'session_secret', 'recovery_code',
        'backup_code', 'verification_code', 'otp', 'two_factor', '2fa_secret', '2fa_code',
        'ssn', 'social_security', 'social_security_number', 'driver_license', 'drivers_license',
        'license_number', 'passport_number', 'passport_id', 'national_id', 'tax_id',
        'credit_card', 'card_number', 'cvv', 'cvc', 'cvn', 'bank_account', 'account_number',
        'routing_number', 'iban', 'swift_code', 'bic',
        'health_record', 'medical_record', 'patient_id', 'insurance_number', 'health_insurance',
        'medical_insurance', 'treatment',
        'mac_address', 'macaddr', 'imei', 'device_uuid',
        'pgp_key', 'gpg_key', 'ssh_key', 'certificate', 'license_key', 'activation_key',
        'facial_recognition'
    ])
),
hits as (
    select n.nspname, c.relname, a.attname, s.pattern
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    join sensitive s on s.pattern = pg_catalog.replace(pg_catalog.lower(a.attname), '-', '_')
    where c.relkind = 'r'
      and not c.relrowsecurity
      and (pg_catalog.has_table_privilege('anon', c.oid, 'SELECT')
           or pg_catalog.has_table_privilege('authenticated', c.oid, 'SELECT'))
      and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
      and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
)
select
    pg_catalog.format(
        'Table `%s.%s` is exposed via API without RLS and contains potentially sensitive column(s): %s. This may lead to data exposure.',
        nspname, relname, pg_catalog.string_agg(distinct attname::text, ', ' order by attname::text)
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', nspname, 'name', relname, 'type', 'table',
        'sensitive_columns', pg_catalog.array_agg(distinct attname order by attname),
        'matched_patterns', pg_catalog.array_agg(distinct pattern order by pattern)
    ) as metadata,
    pg_catalog.format('sensitive_columns_exposed_%s_%s', nspname, relname) as cache_key
from hits
group by nspname, relname;

-- name: rls_policy_always_true
-- Permissive write policies for anon/authenticated/public whose condition is always true.
with policies as (
    select n.nspname, c.relname, p.polname,
           (select pg_catalog.array_agg(r::regrole::text) from pg_catalog.unnest(p.polroles) r) as roles,
           case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE'
                         when 'd' then 'DELETE' when '*' then 'ALL' end as command,
           pg_catalog.pg_get_expr(p.polqual, p.polrelid) as qual,
           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as with_check
    from pg_catalog.pg_policy p
    join pg_catalog.pg_class c on c.oid = p.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r'
      and c.relrowsecurity
      and p.polpermissive
      and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
      and (p.polroles = array[0::oid]
           or exists (select from pg_catalog.unnest(p.polroles) r
                      where r::regrole::text in ('anon', 'authenticated')))
),
judged as (
    select p.*,
           pg_catalog.translate(pg_catalog.lower(coalesce(p.qual, '')), E' \n\t', '')
               in ('true', '(true)', '1=1', '(1=1)') as qual_true,
           pg_catalog.translate(pg_catalog.lower(coalesce(p.with_check, '')), E' \n\t', '')
               in ('true', '(true)', '1=1', '(1=1)') as check_true
    from policies p
),
flagged as (
    select j.*,
           (j.command in ('UPDATE', 'DELETE', 'ALL') and (j.qual_true or j.qual is null)) as open_using,
           (j.check_true
            or (j.with_check is null and j.command = 'INSERT')
            or (j.with_check is null and j.command in ('UPDATE', 'ALL') and j.qual_true)) as open_check
    from judged j
)
select
    pg_catalog.format(
        'Table `%s.%s` has an RLS policy `%s` for `%s` that allows unrestricted access%s. This effectively bypasses row-level security for %s.',
        nspname, relname, polname, command,
        case when open_using and open_check then ' (both USING and WITH CHECK are always true)'
             when open_using then ' (USING clause is always true)'
             else ' (WITH CHECK clause is always true)' end,
        pg_catalog.array_to_string(roles, ', ')
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', nspname, 'name', relname, 'type', 'table', 'policy_name', polname, 'command', command,
        'roles', roles, 'qual', qual, 'with_check', with_check,
        'permissive_using', open_using, 'permissive_with_check', open_check
    ) as metadata,
    pg_catalog.format('rls_policy_always_true_%s_%s_%s', nspname, relname, polname) as cache_key
from flagged
where open_using or open_check;

-- name: public_bucket_allows_listing
-- Public storage buckets with a broad SELECT policy on storage.objects (anyone can list the files).
with buckets as (
    select b.id::text as bucket_id, b.name::text as bucket_name
    from storage.buckets b
    where b.public
),
broad as (
    select b.bucket_id, b.bucket_name, pol.policyname
    from buckets b
    join pg_catalog.pg_policies pol
      on pol.schemaname = 'storage' and pol.tablename = 'objects'
     and pol.cmd in ('SELECT', 'ALL')
     and pol.permissive = 'PERMISSIVE'
     and pol.roles && array['public', 'anon', 'authenticated']::name[]
    where pol.qual is null
       or pg_catalog.translate(pg_catalog.lower(pol.qual), E' \n\t', '') in ('true', '(true)', '1=1', '(1=1)')
       or (pg_catalog.regexp_match(
               pol.qual,
               $re$\A\s*\(*\s*bucket_id\s*=\s*('(?:[^']|'')*')(\s*::\s*[[:alnum:]_\.]+)?\s*\)*\s*\Z$re$, 'i'
           ))[1] = '''' || pg_catalog.replace(b.bucket_id, '''', '''''') || ''''
),
per_bucket as (
    select bucket_id, bucket_name, pg_catalog.array_agg(policyname order by policyname) as policies,
           pg_catalog.count(*)::int as n
    from broad
    group by bucket_id, bucket_name
)
select
    pg_catalog.format(
        'Public bucket `%s` has %s broad SELECT %s on `storage.objects` (%s), allowing clients to list all files. Public buckets don''t need this for object URL access and it may expose more data than intended.',
        bucket_name, n, case when n = 1 then 'policy' else 'policies' end, pg_catalog.array_to_string(policies, ', ')
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', 'storage', 'name', bucket_name, 'type', 'bucket', 'bucket_id', bucket_id,
        'bucket_name', bucket_name, 'policy_names', policies, 'policy_count', n
    ) as metadata,
    pg_catalog.format('public_bucket_allows_listing_%s', bucket_id) as cache_key
from per_bucket;

-- name: pg_graphql_anon_table_exposed
-- With pg_graphql installed: relations anon can select from, hence visible in GraphQL introspection.
select
    pg_catalog.format(
        '%s `%s.%s` is visible in the GraphQL schema because the `anon` role can `SELECT` it. Revoke `SELECT` from `anon` if it should not be discoverable without signing in.',
        o.kind, n.nspname, c.relname
    ) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', o.kind) as metadata,
    pg_catalog.format('pg_graphql_anon_table_exposed_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral (select case c.relkind when 'r' then 'table' when 'v' then 'view'
                                          when 'm' then 'materialized view' when 'f' then 'foreign table' end) o(kind)
where c.relkind in ('r', 'v', 'm', 'f')
  and exists (select from pg_catalog.pg_extension x where x.extname = 'pg_graphql')
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and exists (select from pg_catalog.pg_attribute a
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                and pg_catalog.has_column_privilege('anon', c.oid, a.attnum, 'SELECT'));

-- name: pg_graphql_authenticated_table_exposed
-- With pg_graphql installed: relations authenticated can select from, visible to every signed-in user.
select
    pg_catalog.format(
        '%s `%s.%s` is visible in the GraphQL schema to signed-in users because the `authenticated` role can `SELECT` it. Revoke `SELECT` from `authenticated` if it should not be discoverable to every account.',
        o.kind, n.nspname, c.relname
    ) as detail,
    pg_catalog.jsonb_build_object('schema', n.nspname, 'name', c.relname, 'type', o.kind) as metadata,
    pg_catalog.format('pg_graphql_authenticated_table_exposed_%s_%s', n.nspname, c.relname) as cache_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
cross join lateral (select case c.relkind when 'r' then 'table' when 'v' then 'view'
                                          when 'm' then 'materialized view' when 'f' then 'foreign table' end) o(kind)
where c.relkind in ('r', 'v', 'm', 'f')
  and exists (select from pg_catalog.pg_extension x where x.extname = 'pg_graphql')
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[])
  and exists (select from pg_catalog.pg_attribute a
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                and pg_catalog.has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT'));

-- name: anon_security_definer_function_executable
-- SECURITY DEFINER functions in an API schema that anon may execute (callable with the anon key).
select
    pg_catalog.format(
        'Function `%s.%s(%s)` can be executed by the `anon` role as a `SECURITY DEFINER` function via `/rest/v1/rpc/%s`. Revoke `EXECUTE` or switch it to `SECURITY INVOKER` if that is not intentional.',
        n.nspname, f.proname, pg_catalog.pg_get_function_identity_arguments(f.oid), f.proname
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', n.nspname, 'name', f.proname, 'arguments', pg_catalog.pg_get_function_identity_arguments(f.oid),
        'language', l.lanname, 'security_definer', true
    ) as metadata,
    pg_catalog.format('anon_security_definer_function_executable_%s_%s_%s', n.nspname, f.proname,
                      pg_catalog.pg_get_function_identity_arguments(f.oid)) as cache_key
from pg_catalog.pg_proc f
join pg_catalog.pg_namespace n on n.oid = f.pronamespace
join pg_catalog.pg_language l on l.oid = f.prolang
where f.prosecdef
  and pg_catalog.has_function_privilege('anon', f.oid, 'EXECUTE')
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[]);

-- name: authenticated_security_definer_function_executable
-- SECURITY DEFINER functions in an API schema that any signed-in user may execute.
select
    pg_catalog.format(
        'Function `%s.%s(%s)` can be executed by the `authenticated` role as a `SECURITY DEFINER` function via `/rest/v1/rpc/%s`. Revoke `EXECUTE` or switch it to `SECURITY INVOKER` if that is not intentional.',
        n.nspname, f.proname, pg_catalog.pg_get_function_identity_arguments(f.oid), f.proname
    ) as detail,
    pg_catalog.jsonb_build_object(
        'schema', n.nspname, 'name', f.proname, 'arguments', pg_catalog.pg_get_function_identity_arguments(f.oid),
        'language', l.lanname, 'security_definer', true
    ) as metadata,
    pg_catalog.format('authenticated_security_definer_function_executable_%s_%s_%s', n.nspname, f.proname,
                      pg_catalog.pg_get_function_identity_arguments(f.oid)) as cache_key
from pg_catalog.pg_proc f
join pg_catalog.pg_namespace n on n.oid = f.pronamespace
join pg_catalog.pg_language l on l.oid = f.prolang
where f.prosecdef
  and pg_catalog.has_function_privilege('authenticated', f.oid, 'EXECUTE')
  and n.nspname = any (pg_catalog.current_setting('appkit_lint.exposed')::text[])
  and n.nspname <> all (pg_catalog.current_setting('appkit_lint.excluded')::text[]);
