-- The studio's catalog and admin reads (named blocks, loaded by appkit.db.queries.load_queries).

-- name: list_tables
-- Tables, partitioned tables, views and materialized views outside the system schemas, with estimated row counts.
select n.nspname as schema, c.relname as name,
       case c.relkind when 'r' then 'table' when 'p' then 'table' when 'v' then 'view'
                      when 'm' then 'materialized view' when 'f' then 'foreign table' end as kind,
       case when c.reltuples < 0 then null else c.reltuples::bigint end as estimate,
       c.relrowsecurity as rls,
       pg_total_relation_size(c.oid) as size
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
  and n.nspname not like 'pg\_temp\_%' and n.nspname not like 'pg\_toast\_temp\_%'
order by n.nspname, c.relname;

-- name: relation
-- One relation by schema and name: its oid, kind, row-level security and estimated row count.
select c.oid, c.relkind as kind, c.relrowsecurity as rls,
       case when c.reltuples < 0 then null else c.reltuples::bigint end as estimate
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and c.relname = %(name)s and c.relkind in ('r', 'p', 'v', 'm', 'f');

-- name: columns
-- A relation's columns in order: type, nullability, default, identity/generated, enum labels, primary-key position.
select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, t.typname as base_type,
       t.typcategory as category, not a.attnotnull as nullable,
       pg_get_expr(d.adbin, d.adrelid) as default, a.attidentity as identity, a.attgenerated as generated,
       case when t.typtype = 'e' then
         (select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid)
       end as enum_labels,
       (select array_position(i.indkey::int2[], a.attnum) from pg_index i
         where i.indrelid = a.attrelid and i.indisprimary) as pk_position
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %(oid)s and a.attnum > 0 and not a.attisdropped
order by a.attnum;

-- name: user_claims
-- The JWT claims GoTrue puts in an access token for one user (what PostgREST sets as request.jwt.claims).
select jsonb_build_object(
         'sub', u.id::text, 'role', coalesce(nullif(u.role, ''), 'authenticated'), 'aud', coalesce(nullif(u.aud, ''), 'authenticated'),
         'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),
         'app_metadata', coalesce(u.raw_app_meta_data, '{}'::jsonb),
         'user_metadata', coalesce(u.raw_user_meta_data, '{}'::jsonb),
         'is_anonymous', coalesce(u.is_anonymous, false),
         'aal', 'aal1', 'session_id', gen_random_uuid()::text,
         'iat', extract(epoch from now())::bigint, 'exp', extract(epoch from now())::bigint + 3600
       )::text as claims, u.email
from auth.users u where u.id = %(id)s;

-- name: user_sessions
-- A user's sessions, newest first (the Users page; GoTrue has no admin endpoint listing them).
select id, created_at, updated_at, refreshed_at, aal::text as aal, not_after, user_agent, host(ip) as ip
from auth.sessions where user_id = %(id)s order by created_at desc nulls last limit 100;

-- name: has_memberships
-- Whether the database has appkit's organizations (a hosted project may not).
select to_regclass('appkit.memberships') is not null as present;

-- name: user_memberships
-- The organizations a user belongs to, with their role.
select o.id, o.name, o.slug, m.role, m.created_at
from appkit.memberships m join appkit.organizations o on o.id = m.org_id
where m.user_id = %(id)s order by o.name;
