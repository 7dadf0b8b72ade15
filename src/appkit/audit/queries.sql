-- name: list_entries
-- Audit entries matching the filters (null = any), newest first; after_id pages forward (tail).
select l.id, l.at, l.actor, l.role, l.action, l.table_schema, l.table_name, l.pk, l.old, l.new, l.org_id,
       l.request_id, l.ip, l.txid
  from appkit.audit_log l
 where (%(org)s::uuid is null or l.org_id = %(org)s::uuid)
   and (%(schema)s::text is null or l.table_schema = %(schema)s::text)
   and (%(name)s::text is null or l.table_name = %(name)s::text)
   and (%(actor)s::uuid is null or l.actor = %(actor)s::uuid)
   and (%(since)s::timestamptz is null or l.at >= %(since)s::timestamptz)
   and (%(until)s::timestamptz is null or l.at < %(until)s::timestamptz)
   and l.id > %(after_id)s::bigint
 order by l.id desc
 limit %(limit)s;

-- name: last_id
-- The newest entry's id (0 when the log is empty): where `tail` starts.
select coalesce(max(id), 0) as last_id from appkit.audit_log;

-- name: audited_tables
-- Tables with appkit's audit triggers.
select table_schema, table_name from appkit.audited_tables();

-- name: purge
-- Delete entries older than an interval; returns how many.
select appkit.audit_purge(%(older_than)s::interval) as deleted;
