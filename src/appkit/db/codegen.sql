-- Introspection for `appkit gen models`: one named block per catalog read.
-- Each takes %(schemas)s, the text[] of schemas to generate, and orders its rows so the
-- generated file is the same for the same schema.

-- name: schemas
-- Which of the schemas exist.
select n.nspname as name from pg_catalog.pg_namespace n where n.nspname = any (%(schemas)s::text[]);

-- name: types
-- Every type a column or function of the schemas can use: enums, domains, arrays, composites, base types.
select t.oid::int8 as oid, n.nspname as schema, t.typname as name, t.typtype as kind, t.typcategory as category,
       t.typelem::int8 as element, t.typbasetype::int8 as base, t.typnotnull as not_null,
       t.typrelid::int8 as relation,
       case when t.typtype = 'e' then
           (select array_agg(e.enumlabel::text order by e.enumsortorder) from pg_catalog.pg_enum e
            where e.enumtypid = t.oid)
       end as labels
from pg_catalog.pg_type t
join pg_catalog.pg_namespace n on n.oid = t.typnamespace
order by t.oid;

-- name: relations
-- Tables, views, materialized views and foreign tables of the schemas, with their primary key columns.
select c.oid::int8 as oid, n.nspname as schema, c.relname as name, c.relkind::text as kind,
       pg_catalog.obj_description(c.oid, 'pg_class') as comment,
       coalesce((select array_agg(a.attname::text order by k.ord)
                 from pg_catalog.pg_constraint p
                 cross join lateral pg_catalog.unnest(p.conkey) with ordinality k(attnum, ord)
                 join pg_catalog.pg_attribute a on a.attrelid = p.conrelid and a.attnum = k.attnum
                 where p.conrelid = c.oid and p.contype = 'p'), '{}') as primary_key
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = any (%(schemas)s::text[])
  and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not c.relispartition
order by n.nspname, c.relname;

-- name: columns
-- The columns of those relations, in order, with what makes them optional on insert.
select a.attrelid::int8 as relation, a.attname as name, a.atttypid::int8 as type, a.attnotnull as not_null,
       a.atthasdef as has_default, a.attidentity <> '' as identity, a.attgenerated <> '' as generated,
       pg_catalog.col_description(a.attrelid, a.attnum) as comment
from pg_catalog.pg_attribute a
join pg_catalog.pg_class c on c.oid = a.attrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = any (%(schemas)s::text[])
  and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not c.relispartition
  and a.attnum > 0
  and not a.attisdropped
order by a.attrelid, a.attnum;

-- name: functions
-- Functions of the schemas that PostgREST can call (not extension members, not trigger functions).
select f.oid::int8 as oid, n.nspname as schema, f.proname as name,
       coalesce(f.proallargtypes::int8[],
                (select array_agg(u.t::int8 order by u.i) from pg_catalog.unnest(f.proargtypes) with ordinality u(t, i)),
                '{}') as arg_types,
       coalesce(f.proargmodes::text[], array_fill('i'::text, array[f.pronargs::int])) as arg_modes,
       coalesce(f.proargnames, '{}') as arg_names,
       f.pronargdefaults::int as defaults,
       f.prorettype::int8 as returns, f.proretset as returns_set,
       pg_catalog.obj_description(f.oid, 'pg_proc') as comment
from pg_catalog.pg_proc f
join pg_catalog.pg_namespace n on n.oid = f.pronamespace
where n.nspname = any (%(schemas)s::text[])
  and f.prokind = 'f'
  and not exists (select from pg_catalog.pg_depend d where d.objid = f.oid and d.deptype = 'e')
order by n.nspname, f.proname, f.oid;
