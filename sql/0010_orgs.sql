-- Organizations, memberships, roles and permissions, and the RLS helpers users call in
-- their own policies. The database holds every invariant (at least one owner per
-- organization, a member grants only roles at or below their own), also under
-- concurrency: every change that can remove an owner locks the organization's row first.
--
-- Roles, highest first: owner > admin > member > viewer.

-- The rank of a role name, or null for a name that is not a role.
create or replace function appkit.role_rank(role text)
returns int
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case role when 'owner' then 40 when 'admin' then 30 when 'member' then 20 when 'viewer' then 10 end
$$;
revoke execute on function appkit.role_rank(text) from public, anon, authenticated, service_role;
grant execute on function appkit.role_rank(text) to anon, authenticated, service_role;

create table appkit.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(btrim(name)) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  metadata jsonb not null default '{}'::jsonb
    check (jsonb_typeof(metadata) = 'object' and octet_length(metadata::text) <= 65536),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table appkit.organizations is 'appkit organizations (tenants); members are in appkit.memberships';
create index organizations_created_by on appkit.organizations (created_by);

create table appkit.memberships (
  org_id uuid not null references appkit.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
comment on table appkit.memberships is 'who belongs to which appkit organization, with which role';
create index memberships_user_id on appkit.memberships (user_id);

-- role -> permission; a project adds its own rows in its own migrations, e.g.
--   insert into appkit.role_permissions (role, permission)
--   values ('admin', 'reports.export'), ('owner', 'reports.export');
-- A role has exactly the permissions listed for it (no implicit inheritance).
create table appkit.role_permissions (
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  permission text not null check (permission ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  primary key (role, permission)
);
comment on table appkit.role_permissions is 'permissions held by each appkit organization role; projects may add rows';
create index role_permissions_permission on appkit.role_permissions (permission);
insert into appkit.role_permissions (role, permission)
select r.role, p.permission
from (values ('owner', 40), ('admin', 30), ('member', 20), ('viewer', 10)) as r (role, rank)
join (values
  ('org.read', 10), ('members.read', 10),
  ('org.update', 30), ('members.manage', 30), ('invitations.manage', 30),
  ('billing.manage', 40), ('org.delete', 40), ('ownership.transfer', 40)
) as p (permission, min_rank) on r.rank >= p.min_rank;

-- ---------------------------------------------------------------------------------------
-- RLS helpers. They read the caller's roles from the access token's `appkit_orgs` claim
-- when present (stamped by appkit.custom_access_token_hook; stale until the next refresh),
-- else from appkit.memberships. Call them as `(select appkit.fn(...))` in policies.

-- The caller's role in an organization, or null.
create or replace function appkit.org_role(org_id uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  claim jsonb := auth.jwt() -> 'appkit_orgs';
  found_role text;
begin
  if org_role.org_id is null then
    return null;
  end if;
  if jsonb_typeof(claim) = 'object' then
    found_role := claim ->> org_role.org_id::text;
    return case when appkit.role_rank(found_role) is null then null else found_role end;
  end if;
  select m.role into found_role
  from appkit.memberships m
  where m.org_id = org_role.org_id and m.user_id = auth.uid();
  return found_role;
end
$$;

create or replace function appkit.has_org_role(org_id uuid, min_role text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  need int := appkit.role_rank(min_role);
begin
  if need is null then
    raise exception using errcode = '22023', message = format('unknown organization role %L', min_role),
      hint = 'roles are owner, admin, member, viewer';
  end if;
  return coalesce(appkit.role_rank(appkit.org_role(has_org_role.org_id)) >= need, false);
end
$$;

create or replace function appkit.has_org_permission(org_id uuid, permission text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  mine text := appkit.org_role(has_org_permission.org_id);
begin
  if mine is null then
    return false;
  end if;
  return exists (
    select 1 from appkit.role_permissions rp
    where rp.role = mine and rp.permission = has_org_permission.permission
  );
end
$$;

create or replace function appkit.org_ids_with_role(min_role text)
returns setof uuid
language plpgsql
stable
security definer
rows 10
set search_path = ''
as $$
declare
  need int := appkit.role_rank(min_role);
  claim jsonb := auth.jwt() -> 'appkit_orgs';
begin
  if need is null then
    raise exception using errcode = '22023', message = format('unknown organization role %L', min_role),
      hint = 'roles are owner, admin, member, viewer';
  end if;
  if jsonb_typeof(claim) = 'object' then
    return query
      select c.key::uuid from jsonb_each_text(claim) c
      where c.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        and appkit.role_rank(c.value) >= need;
    return;
  end if;
  return query
    select m.org_id from appkit.memberships m
    where m.user_id = auth.uid() and appkit.role_rank(m.role) >= need;
end
$$;

revoke execute on function appkit.org_role(uuid) from public, anon, authenticated, service_role;
revoke execute on function appkit.has_org_role(uuid, text) from public, anon, authenticated, service_role;
revoke execute on function appkit.has_org_permission(uuid, text) from public, anon, authenticated, service_role;
revoke execute on function appkit.org_ids_with_role(text) from public, anon, authenticated, service_role;
grant execute on function appkit.org_role(uuid) to authenticated, service_role;
grant execute on function appkit.has_org_role(uuid, text) to authenticated, service_role;
grant execute on function appkit.has_org_permission(uuid, text) to authenticated, service_role;
grant execute on function appkit.org_ids_with_role(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Invariants held by triggers (whoever writes: RPCs, the service role, cascades).

create or replace function appkit._touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function appkit._touch_updated_at() from public, anon, authenticated, service_role;
create trigger organizations_touch before update on appkit.organizations
  for each row execute function appkit._touch_updated_at();

-- An organization keeps at least one owner. The organization's row is locked before
-- counting, so two owners demoting each other at once are serialised and the second fails.
-- Deleting the organization itself (the row is gone) is always allowed.
create or replace function appkit._keep_an_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner' and new.org_id = old.org_id) then
    return null;
  end if;
  perform 1 from appkit.organizations o where o.id = old.org_id for no key update;
  if not found then
    return null;
  end if;
  if not exists (select 1 from appkit.memberships m where m.org_id = old.org_id and m.role = 'owner') then
    raise exception using errcode = '55000',
      message = 'an organization must keep at least one owner',
      hint = 'transfer ownership or make another member an owner first (or delete the organization)';
  end if;
  return null;
end
$$;
revoke execute on function appkit._keep_an_owner() from public, anon, authenticated, service_role;
create constraint trigger memberships_keep_an_owner after update or delete on appkit.memberships
  for each row execute function appkit._keep_an_owner();

-- A new organization has an owner by the end of its transaction.
create or replace function appkit._org_has_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select 1 from appkit.organizations o where o.id = new.id)
     and not exists (select 1 from appkit.memberships m where m.org_id = new.id and m.role = 'owner') then
    raise exception using errcode = '55000',
      message = format('organization %s has no owner', new.slug),
      hint = 'create organizations with appkit.create_organization, or add an owner in the same transaction';
  end if;
  return null;
end
$$;
revoke execute on function appkit._org_has_owner() from public, anon, authenticated, service_role;
create constraint trigger organizations_need_an_owner after insert on appkit.organizations
  deferrable initially deferred
  for each row execute function appkit._org_has_owner();

-- ---------------------------------------------------------------------------------------
-- Row-level security. Authenticated users read what their roles allow; writes other than
-- an organization's update/delete go through the RPCs below. The service role bypasses RLS.

alter table appkit.organizations enable row level security;
alter table appkit.memberships enable row level security;
alter table appkit.role_permissions enable row level security;

create policy organizations_read on appkit.organizations for select to authenticated
  using (id in (select appkit.org_ids_with_role('viewer')));
create policy organizations_update on appkit.organizations for update to authenticated
  using (appkit.has_org_permission(id, 'org.update'))
  with check (appkit.has_org_permission(id, 'org.update'));
create policy organizations_delete on appkit.organizations for delete to authenticated
  using (appkit.has_org_permission(id, 'org.delete'));

create policy memberships_read on appkit.memberships for select to authenticated
  using (user_id = (select auth.uid()) or org_id in (select appkit.org_ids_with_role('viewer')));

create policy role_permissions_read on appkit.role_permissions for select to authenticated using (true);

revoke all on appkit.organizations, appkit.memberships, appkit.role_permissions from anon, authenticated, service_role;
grant select, delete on appkit.organizations to authenticated;
grant update (name, slug, metadata) on appkit.organizations to authenticated;
grant select on appkit.memberships to authenticated;
grant select on appkit.role_permissions to authenticated;
grant all on appkit.organizations, appkit.memberships, appkit.role_permissions to service_role;

-- ---------------------------------------------------------------------------------------
-- RPCs. Each one that changes memberships locks the organization's row first and reads the
-- caller's role from the tables (never from a possibly stale token claim). The service role
-- (a service-role JWT) acts with every permission; the database's invariants still hold.

create or replace function appkit._is_service_role()
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce(auth.jwt() ->> 'role', '') = 'service_role'
$$;
revoke execute on function appkit._is_service_role() from public, anon, authenticated, service_role;

-- Lock an organization's row and return the caller's current role in it ('service_role' for
-- the service role). An organization the caller does not belong to is "not found".
create or replace function appkit._lock_org(org_id uuid)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  found_role text;
begin
  if _lock_org.org_id is null then
    raise exception using errcode = '22023', message = 'org_id is required';
  end if;
  if appkit._is_service_role() then
    perform 1 from appkit.organizations o where o.id = _lock_org.org_id for no key update;
    if not found then
      raise exception using errcode = 'P0002', message = 'organization not found';
    end if;
    return 'service_role';
  end if;
  if not exists (select 1 from appkit.memberships m where m.org_id = _lock_org.org_id and m.user_id = auth.uid()) then
    raise exception using errcode = 'P0002', message = 'organization not found';
  end if;
  perform 1 from appkit.organizations o where o.id = _lock_org.org_id for no key update;
  select m.role into found_role from appkit.memberships m
  where m.org_id = _lock_org.org_id and m.user_id = auth.uid();
  if found_role is null then
    raise exception using errcode = 'P0002', message = 'organization not found';
  end if;
  return found_role;
end
$$;
revoke execute on function appkit._lock_org(uuid) from public, anon, authenticated, service_role;

create or replace function appkit._role_can(role text, permission text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select role = 'service_role'
    or exists (select 1 from appkit.role_permissions rp where rp.role = _role_can.role and rp.permission = _role_can.permission)
$$;
revoke execute on function appkit._role_can(text, text) from public, anon, authenticated, service_role;

-- The role name, or an error for a name that is not a role.
create or replace function appkit._check_role(role text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if appkit.role_rank(_check_role.role) is null then
    raise exception using errcode = '22023', message = format('unknown organization role %L', _check_role.role),
      hint = 'roles are owner, admin, member, viewer';
  end if;
  return _check_role.role;
end
$$;
revoke execute on function appkit._check_role(text) from public, anon, authenticated, service_role;

-- Create an organization; the caller becomes its owner. The service role names the owner.
create or replace function appkit.create_organization(name text, slug text, metadata jsonb default '{}'::jsonb,
                                                      owner_id uuid default null)
returns appkit.organizations
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  creator uuid;
  org appkit.organizations;
begin
  if appkit._is_service_role() then
    if owner_id is null then
      raise exception using errcode = '22023', message = 'owner_id is required when the service role creates an organization';
    end if;
    if not exists (select 1 from auth.users u where u.id = owner_id) then
      raise exception using errcode = 'P0002', message = format('user %s not found', owner_id);
    end if;
    creator := owner_id;
  else
    creator := auth.uid();
    if creator is null then
      raise exception using errcode = '42501', message = 'sign in to create an organization';
    end if;
    if owner_id is not null and owner_id <> creator then
      raise exception using errcode = '42501', message = 'only the service role may create an organization for another user';
    end if;
  end if;
  if name is null or char_length(btrim(name)) not between 1 and 200 then
    raise exception using errcode = '22023', message = 'an organization name has 1 to 200 characters';
  end if;
  if slug is null or slug !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' then
    raise exception using errcode = '22023', message = format('invalid slug %L', slug),
      hint = 'use 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen';
  end if;
  if metadata is null or jsonb_typeof(metadata) <> 'object' then
    raise exception using errcode = '22023', message = 'metadata must be a JSON object';
  end if;
  begin
    insert into appkit.organizations (name, slug, metadata, created_by)
    values (btrim(name), slug, metadata, creator)
    returning * into org;
  exception when unique_violation then
    raise exception using errcode = '23505', message = format('the slug %L is taken', slug);
  end;
  insert into appkit.memberships (org_id, user_id, role) values (org.id, creator, 'owner');
  return org;
end
$$;

-- Members of an organization with their e-mail addresses (members.read, or the service role).
create or replace function appkit.org_members(org_id uuid)
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if org_members.org_id is null then
    raise exception using errcode = '22023', message = 'org_id is required';
  end if;
  if not appkit._is_service_role() and not appkit.has_org_permission(org_members.org_id, 'members.read') then
    raise exception using errcode = 'P0002', message = 'organization not found';
  end if;
  if not exists (select 1 from appkit.organizations o where o.id = org_members.org_id) then
    raise exception using errcode = 'P0002', message = 'organization not found';
  end if;
  return query
    select m.user_id, u.email::text, m.role, m.created_at
    from appkit.memberships m join auth.users u on u.id = m.user_id
    where m.org_id = org_members.org_id
    order by appkit.role_rank(m.role) desc, m.created_at, m.user_id;
end
$$;

-- Add an existing user (service role only; users join through invitations).
create or replace function appkit.add_member(org_id uuid, user_id uuid, role text)
returns appkit.memberships
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  result appkit.memberships;
begin
  perform appkit._check_role(add_member.role);
  if not appkit._is_service_role() then
    raise exception using errcode = '42501', message = 'only the service role adds members directly; invite users instead';
  end if;
  perform appkit._lock_org(add_member.org_id);
  if add_member.user_id is null or not exists (select 1 from auth.users u where u.id = add_member.user_id) then
    raise exception using errcode = 'P0002', message = format('user %s not found', add_member.user_id);
  end if;
  begin
    insert into appkit.memberships (org_id, user_id, role)
    values (add_member.org_id, add_member.user_id, add_member.role)
    returning * into result;
  exception when unique_violation then
    raise exception using errcode = '23505', message = 'the user is already a member of this organization';
  end;
  return result;
end
$$;

-- Change a member's role: needs members.manage, and the caller ranks at or above both the
-- member's current role and the new one.
create or replace function appkit.set_member_role(org_id uuid, user_id uuid, role text)
returns appkit.memberships
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  actor text;
  target text;
  result appkit.memberships;
begin
  perform appkit._check_role(set_member_role.role);
  actor := appkit._lock_org(set_member_role.org_id);
  if not appkit._role_can(actor, 'members.manage') then
    raise exception using errcode = '42501', message = 'you may not manage the members of this organization';
  end if;
  select m.role into target from appkit.memberships m
  where m.org_id = set_member_role.org_id and m.user_id = set_member_role.user_id
  for update;
  if target is null then
    raise exception using errcode = 'P0002', message = 'no such member in this organization';
  end if;
  if actor <> 'service_role' then
    if appkit.role_rank(target) > appkit.role_rank(actor) then
      raise exception using errcode = '42501', message = format('you (%s) cannot change the role of an %s', actor, target);
    end if;
    if appkit.role_rank(set_member_role.role) > appkit.role_rank(actor) then
      raise exception using errcode = '42501',
        message = format('you (%s) can grant only roles at or below your own, not %s', actor, set_member_role.role);
    end if;
  end if;
  update appkit.memberships m set role = set_member_role.role
  where m.org_id = set_member_role.org_id and m.user_id = set_member_role.user_id
  returning m.* into result;
  return result;
end
$$;

-- Remove a member: needs members.manage and a rank at or above the member's (removing
-- oneself is leave_organization). The last owner cannot be removed.
create or replace function appkit.remove_member(org_id uuid, user_id uuid)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  actor text;
  target text;
begin
  actor := appkit._lock_org(remove_member.org_id);
  if remove_member.user_id is distinct from auth.uid() and not appkit._role_can(actor, 'members.manage') then
    raise exception using errcode = '42501', message = 'you may not manage the members of this organization';
  end if;
  select m.role into target from appkit.memberships m
  where m.org_id = remove_member.org_id and m.user_id = remove_member.user_id
  for update;
  if target is null then
    raise exception using errcode = 'P0002', message = 'no such member in this organization';
  end if;
  if actor <> 'service_role' and appkit.role_rank(target) > appkit.role_rank(actor) then
    raise exception using errcode = '42501', message = format('you (%s) cannot remove an %s', actor, target);
  end if;
  delete from appkit.memberships m where m.org_id = remove_member.org_id and m.user_id = remove_member.user_id;
end
$$;

-- Leave an organization (the last owner cannot leave: transfer ownership first).
create or replace function appkit.leave_organization(org_id uuid)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = '42501', message = 'sign in to leave an organization';
  end if;
  perform appkit._lock_org(leave_organization.org_id);
  delete from appkit.memberships m where m.org_id = leave_organization.org_id and m.user_id = auth.uid();
end
$$;

-- Make a member the owner. An owner caller becomes an admin; the service role demotes every
-- other owner to admin.
create or replace function appkit.transfer_ownership(org_id uuid, user_id uuid)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  actor text;
begin
  actor := appkit._lock_org(transfer_ownership.org_id);
  if not appkit._role_can(actor, 'ownership.transfer') then
    raise exception using errcode = '42501', message = 'only an owner may transfer ownership';
  end if;
  if not exists (select 1 from appkit.memberships m
                 where m.org_id = transfer_ownership.org_id and m.user_id = transfer_ownership.user_id) then
    raise exception using errcode = 'P0002', message = 'the new owner must be a member of this organization';
  end if;
  update appkit.memberships m set role = 'owner'
  where m.org_id = transfer_ownership.org_id and m.user_id = transfer_ownership.user_id;
  update appkit.memberships m set role = 'admin'
  where m.org_id = transfer_ownership.org_id and m.role = 'owner' and m.user_id <> transfer_ownership.user_id
    and (actor = 'service_role' or m.user_id = auth.uid());
end
$$;

revoke execute on function appkit.create_organization(text, text, jsonb, uuid) from public, anon, authenticated, service_role;
revoke execute on function appkit.org_members(uuid) from public, anon, authenticated, service_role;
revoke execute on function appkit.add_member(uuid, uuid, text) from public, anon, authenticated, service_role;
revoke execute on function appkit.set_member_role(uuid, uuid, text) from public, anon, authenticated, service_role;
revoke execute on function appkit.remove_member(uuid, uuid) from public, anon, authenticated, service_role;
revoke execute on function appkit.leave_organization(uuid) from public, anon, authenticated, service_role;
revoke execute on function appkit.transfer_ownership(uuid, uuid) from public, anon, authenticated, service_role;
grant execute on function appkit.create_organization(text, text, jsonb, uuid) to authenticated, service_role;
grant execute on function appkit.org_members(uuid) to authenticated, service_role;
grant execute on function appkit.add_member(uuid, uuid, text) to service_role;
grant execute on function appkit.set_member_role(uuid, uuid, text) to authenticated, service_role;
grant execute on function appkit.remove_member(uuid, uuid) to authenticated, service_role;
grant execute on function appkit.leave_organization(uuid) to authenticated, service_role;
grant execute on function appkit.transfer_ownership(uuid, uuid) to authenticated, service_role;
