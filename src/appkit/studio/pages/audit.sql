-- Queries of the studio's Audit log page (a direct read of appkit.audit_log, as `appkit audit list`).

-- name: entries
-- Audit entries matching the filters (null = any), newest first; before_id pages backwards (keyset).
select l.id, l.at, l.actor, u.email as actor_email, l.role, l.action, l.table_schema, l.table_name, l.pk, l.old,
       l.new, l.org_id, o.name as org_name, l.request_id, l.ip
  from appkit.audit_log l
  left join auth.users u on u.id = l.actor
  left join appkit.organizations o on o.id = l.org_id
 where (%(org)s::uuid is null or l.org_id = %(org)s::uuid)
   and (%(schema)s::text is null or l.table_schema = %(schema)s::text)
   and (%(name)s::text is null or l.table_name = %(name)s::text)
   and (%(actor)s::uuid is null or l.actor = %(actor)s::uuid)
   and (%(since)s::timestamptz is null or l.at >= %(since)s::timestamptz)
   and (%(until)s::timestamptz is null or l.at < %(until)s::timestamptz)
   and (%(before_id)s::bigint is null or l.id < %(before_id)s::bigint)
 order by l.id desc
 limit %(limit)s;

-- name: audited_tables
-- Tables with appkit's audit triggers (for the table filter's choices).
select table_schema || '.' || table_name as name from appkit.audited_tables() order by 1;
