-- Notifications: per-user messages (kind, title, body, data, org, read_at, created_at) in the
-- supabase_realtime publication, so a recipient's clients receive them live; RLS keeps each
-- user to their own rows, on the REST API and on the change feed alike. Sent by the service
-- role, or by an org admin to members of that org (appkit.send_notification / appkit.notify_org).

create table appkit.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  org_id uuid references appkit.organizations (id) on delete cascade,
  kind text not null default 'info' check (kind ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
  title text not null check (char_length(title) between 1 and 200),
  body text check (char_length(body) <= 10000),
  data jsonb not null default '{}'::jsonb
    check (jsonb_typeof(data) = 'object' and octet_length(data::text) <= 16384),
  sent_by uuid references auth.users (id) on delete set null,
  read_at timestamptz,
  created_at timestamptz not null default now()
);
comment on table appkit.notifications is 'Per-user notifications; the recipient reads, marks and deletes their own.';
create index notifications_user_created on appkit.notifications (user_id, created_at desc);
create index notifications_user_unread on appkit.notifications (user_id) where read_at is null;
create index notifications_org_id on appkit.notifications (org_id) where org_id is not null;
create index notifications_sent_by on appkit.notifications (sent_by) where sent_by is not null;

alter table appkit.notifications enable row level security;
revoke all on table appkit.notifications from public, anon, authenticated, service_role;
grant select, delete on table appkit.notifications to authenticated;
grant update (read_at) on table appkit.notifications to authenticated;
grant select, insert, update, delete on table appkit.notifications to service_role;

create policy notifications_own_read on appkit.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_own_update on appkit.notifications for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy notifications_own_delete on appkit.notifications for delete to authenticated
  using (user_id = (select auth.uid()));

do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    alter publication supabase_realtime add table appkit.notifications;
  end if;
end;
$$;

create or replace function appkit._notification_checks(title text, body text, data jsonb, kind text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  if title is null or char_length(title) not between 1 and 200 then
    raise exception 'a notification title has 1 to 200 characters' using errcode = '22023';
  end if;
  if char_length(body) > 10000 then
    raise exception 'a notification body has at most 10000 characters' using errcode = '22023';
  end if;
  if data is null or jsonb_typeof(data) <> 'object' then
    raise exception 'notification data must be a JSON object' using errcode = '22023';
  end if;
  if kind is null or kind !~ '^[a-z0-9][a-z0-9_.:-]{0,63}$' then
    raise exception 'invalid notification kind %', kind using errcode = '22023',
      hint = 'lowercase letters, digits and _ . : -, at most 64';
  end if;
  return true;
end;
$$;

-- One notification to one user. The service role may notify anyone (org_id optional); an org
-- admin may notify a member of that org (org_id required).
create or replace function appkit.send_notification(user_id uuid, title text, body text default null,
                                                    data jsonb default '{}'::jsonb, org_id uuid default null,
                                                    kind text default 'info')
returns appkit.notifications
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  is_service boolean := coalesce(auth.role() = 'service_role', auth.jwt() is null);
  created appkit.notifications;
begin
  perform appkit._notification_checks(title, body, data, kind);
  if user_id is null then
    raise exception 'user_id is required' using errcode = '22023';
  end if;
  if not is_service then
    if send_notification.org_id is null or not appkit.has_org_role(send_notification.org_id, 'admin') then
      raise exception 'only the service role, or an admin of the organization, may send notifications'
        using errcode = '42501', hint = 'pass the org_id of an organization you administer';
    end if;
    if not exists (select 1 from appkit.memberships m
                    where m.org_id = send_notification.org_id and m.user_id = send_notification.user_id) then
      raise exception 'the recipient is not a member of the organization' using errcode = '42501';
    end if;
  elsif not exists (select 1 from auth.users u where u.id = send_notification.user_id) then
    raise exception 'user % not found', send_notification.user_id using errcode = 'P0002';
  end if;
  insert into appkit.notifications (user_id, org_id, kind, title, body, data, sent_by)
  values (send_notification.user_id, send_notification.org_id, kind, title, body, data, auth.uid())
  returning * into created;
  return created;
end;
$$;
comment on function appkit.send_notification(uuid, text, text, jsonb, uuid, text) is
  'Notify one user (service role; or an org admin notifying a member of that org).';

-- Notify every member of an org whose role is at least min_role; returns how many were sent.
create or replace function appkit.notify_org(org_id uuid, title text, body text default null,
                                             data jsonb default '{}'::jsonb, kind text default 'info',
                                             min_role text default 'viewer', include_sender boolean default false)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  is_service boolean := coalesce(auth.role() = 'service_role', auth.jwt() is null);
  sender uuid := auth.uid();
  n integer;
begin
  perform appkit._notification_checks(title, body, data, kind);
  if appkit.role_rank(min_role) is null then
    raise exception 'unknown organization role %', min_role using errcode = '22023',
      hint = 'roles are owner, admin, member, viewer';
  end if;
  if notify_org.org_id is null then
    raise exception 'org_id is required' using errcode = '22023';
  end if;
  if not is_service and not appkit.has_org_role(notify_org.org_id, 'admin') then
    raise exception 'only the service role, or an admin of the organization, may notify its members'
      using errcode = '42501';
  end if;
  insert into appkit.notifications (user_id, org_id, kind, title, body, data, sent_by)
  select m.user_id, notify_org.org_id, kind, title, body, data, sender
    from appkit.memberships m
   where m.org_id = notify_org.org_id
     and appkit.role_rank(m.role) >= appkit.role_rank(min_role)
     and (include_sender or sender is null or m.user_id <> sender);
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function appkit.notify_org(uuid, text, text, jsonb, text, text, boolean) is
  'Notify the members of an organization (service role, or an admin of it); returns how many.';

-- Mark the caller's notifications read (the given ids, or all unread when ids is null);
-- returns how many changed. Runs as the caller, so RLS keeps it to their own rows.
create or replace function appkit.mark_notifications_read(ids uuid[] default null)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  n integer;
begin
  update appkit.notifications nt set read_at = now()
   where nt.read_at is null
     and nt.user_id = auth.uid()
     and (ids is null or nt.id = any (ids));
  get diagnostics n = row_count;
  return n;
end;
$$;
comment on function appkit.mark_notifications_read(uuid[]) is 'Mark the caller''s notifications read; returns how many.';

revoke execute on function appkit._notification_checks(text, text, jsonb, text) from public;
revoke execute on function appkit.send_notification(uuid, text, text, jsonb, uuid, text) from public;
revoke execute on function appkit.notify_org(uuid, text, text, jsonb, text, text, boolean) from public;
revoke execute on function appkit.mark_notifications_read(uuid[]) from public;
grant execute on function appkit._notification_checks(text, text, jsonb, text) to service_role;
grant execute on function appkit.send_notification(uuid, text, text, jsonb, uuid, text)
  to authenticated, service_role;
grant execute on function appkit.notify_org(uuid, text, text, jsonb, text, text, boolean)
  to authenticated, service_role;
grant execute on function appkit.mark_notifications_read(uuid[]) to authenticated;
