-- name: email_of_notification
-- A notification with its recipient's e-mail address (null for a phone-only user).
select n.id, n.title, n.body, n.data, n.kind, n.org_id, n.created_at, u.email::text as email
  from appkit.notifications n
  join auth.users u on u.id = n.user_id
 where n.id = %(id)s;

-- name: catcher_exists
-- Whether this database has the local stack's mail catcher.
select to_regclass('_appkit.auth_messages') is not null as present;

-- name: capture_email
-- Keep an e-mail in the local stack's mail catcher (what `appkit mail` lists) instead of sending it.
insert into _appkit.auth_messages (channel, recipient, type, subject, body, user_id)
values ('email', %(recipient)s, 'notification', %(subject)s, %(body)s,
        (select n.user_id from appkit.notifications n where n.id = %(id)s))
returning id;
