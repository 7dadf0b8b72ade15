-- Invitations to organizations: a random token (64 hex characters, 244 random bits) handed
-- to the invitee once and stored only as its sha-256; optionally bound to an e-mail address
-- (only a user with that verified address may accept), with a role, an expiry, single use,
-- revocable. Invitations are created, previewed, accepted and revoked through RPCs.

create table appkit.invitations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references appkit.organizations (id) on delete cascade,
  email text check (email = lower(email) and email ~ '^[^@[:space:]]+@[^@[:space:]]+$' and char_length(email) <= 320),
  role text not null check (role in ('admin', 'member', 'viewer')),
  token_hash bytea not null unique check (octet_length(token_hash) = 32),
  invited_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  check (expires_at > created_at)
);
comment on table appkit.invitations is 'invitations to appkit organizations; the token is stored only as its sha-256';
create index invitations_org_id on appkit.invitations (org_id);
create index invitations_invited_by on appkit.invitations (invited_by);
create index invitations_accepted_by on appkit.invitations (accepted_by);

alter table appkit.invitations enable row level security;
create policy invitations_read on appkit.invitations for select to authenticated
  using (appkit.has_org_permission(org_id, 'invitations.manage'));
revoke all on appkit.invitations from anon, authenticated, service_role;
-- token_hash is not readable through the API (column privileges), not even by managers.
grant select (id, org_id, email, role, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at)
  on appkit.invitations to authenticated;
grant all on appkit.invitations to service_role;

create or replace function appkit._invitation_hash(token text)
returns bytea
language plpgsql
immutable
set search_path = ''
as $$
begin
  if token is null or token !~ '^[0-9a-f]{64}$' then
    raise exception using errcode = '22023', message = 'malformed invitation token';
  end if;
  return sha256(convert_to(token, 'UTF8'));
end
$$;
revoke execute on function appkit._invitation_hash(text) from public, anon, authenticated, service_role;

create or replace function appkit._invitation_status(inv appkit.invitations)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when inv.revoked_at is not null then 'revoked'
    when inv.accepted_at is not null then 'accepted'
    when inv.expires_at <= now() then 'expired'
    else 'pending'
  end
$$;
revoke execute on function appkit._invitation_status(appkit.invitations) from public, anon, authenticated, service_role;

-- Invite to an organization: needs invitations.manage; the role is admin, member or viewer and
-- at or below the caller's own. Returns the invitation with its token (shown only here).
create or replace function appkit.create_invitation(org_id uuid, role text, email text default null,
                                                    expires_in_seconds int default 604800)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  actor text;
  norm_email text := lower(btrim(create_invitation.email));
  token text;
  inv appkit.invitations;
begin
  perform appkit._check_role(create_invitation.role);
  if create_invitation.role = 'owner' then
    raise exception using errcode = '22023', message = 'invitations grant admin, member or viewer',
      hint = 'invite as admin, then transfer ownership';
  end if;
  if expires_in_seconds is null or expires_in_seconds not between 60 and 2592000 then
    raise exception using errcode = '22023', message = 'expires_in_seconds must be between 60 and 2592000 (30 days)';
  end if;
  if create_invitation.email is not null
     and (norm_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' or char_length(norm_email) > 320) then
    raise exception using errcode = '22023', message = format('invalid e-mail address %L', create_invitation.email);
  end if;
  actor := appkit._lock_org(create_invitation.org_id);
  if not appkit._role_can(actor, 'invitations.manage') then
    raise exception using errcode = '42501', message = 'you may not invite to this organization';
  end if;
  if actor <> 'service_role' and appkit.role_rank(create_invitation.role) > appkit.role_rank(actor) then
    raise exception using errcode = '42501',
      message = format('you (%s) can grant only roles at or below your own, not %s', actor, create_invitation.role);
  end if;
  token := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  insert into appkit.invitations (org_id, email, role, token_hash, invited_by, expires_at)
  values (create_invitation.org_id, norm_email, create_invitation.role, appkit._invitation_hash(token), auth.uid(),
          now() + make_interval(secs => expires_in_seconds))
  returning * into inv;
  return (to_jsonb(inv) - 'token_hash') || jsonb_build_object('token', token, 'status', 'pending');
end
$$;

-- Preview an invitation by its token without accepting it (anyone holding the token).
create or replace function appkit.lookup_invitation(token text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  inv appkit.invitations;
  org appkit.organizations;
begin
  select * into inv from appkit.invitations i where i.token_hash = appkit._invitation_hash(lookup_invitation.token);
  if inv.id is null then
    raise exception using errcode = 'P0002', message = 'invitation not found';
  end if;
  select * into org from appkit.organizations o where o.id = inv.org_id;
  return jsonb_build_object(
    'id', inv.id, 'org_id', inv.org_id, 'org_name', org.name, 'org_slug', org.slug, 'role', inv.role,
    'email', inv.email, 'expires_at', inv.expires_at, 'status', appkit._invitation_status(inv)
  );
end
$$;

-- Accept an invitation: the caller joins the organization with the invitation's role.
-- The invitation's row is locked, so accepting one token twice at once uses it once.
create or replace function appkit.accept_invitation(token text)
returns appkit.memberships
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  uid uuid := auth.uid();
  hash bytea := appkit._invitation_hash(accept_invitation.token);
  inv appkit.invitations;
  who auth.users;
  result appkit.memberships;
begin
  if uid is null then
    raise exception using errcode = '42501', message = 'sign in to accept an invitation';
  end if;
  select * into inv from appkit.invitations i where i.token_hash = hash for update;
  if inv.id is null then
    raise exception using errcode = 'P0002', message = 'invitation not found';
  end if;
  case appkit._invitation_status(inv)
    when 'revoked' then
      raise exception using errcode = '55000', message = 'this invitation was revoked';
    when 'accepted' then
      raise exception using errcode = '55000', message = 'this invitation was already used';
    when 'expired' then
      raise exception using errcode = '55000', message = 'this invitation has expired';
    else
      null;
  end case;
  if inv.email is not null then
    select * into who from auth.users u where u.id = uid;
    if who.email is null or lower(who.email) <> inv.email then
      raise exception using errcode = '42501', message = 'this invitation is for another e-mail address';
    end if;
    if who.email_confirmed_at is null then
      raise exception using errcode = '42501', message = 'verify your e-mail address before accepting this invitation';
    end if;
  end if;
  if exists (select 1 from appkit.memberships m where m.org_id = inv.org_id and m.user_id = uid) then
    raise exception using errcode = '23505', message = 'you are already a member of this organization';
  end if;
  insert into appkit.memberships (org_id, user_id, role) values (inv.org_id, uid, inv.role) returning * into result;
  update appkit.invitations i set accepted_at = now(), accepted_by = uid where i.id = inv.id;
  return result;
end
$$;

-- Revoke a pending invitation (invitations.manage). Revoking twice is a no-op; an accepted
-- invitation cannot be revoked (remove the member instead).
create or replace function appkit.revoke_invitation(invitation_id uuid)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  inv appkit.invitations;
  actor text;
begin
  select * into inv from appkit.invitations i where i.id = revoke_invitation.invitation_id;
  if inv.id is null then
    raise exception using errcode = 'P0002', message = 'invitation not found';
  end if;
  actor := appkit._lock_org(inv.org_id);
  if not appkit._role_can(actor, 'invitations.manage') then
    raise exception using errcode = 'P0002', message = 'invitation not found';
  end if;
  select * into inv from appkit.invitations i where i.id = revoke_invitation.invitation_id for update;
  if inv.accepted_at is not null then
    raise exception using errcode = '55000', message = 'this invitation was already accepted; remove the member instead';
  end if;
  update appkit.invitations i set revoked_at = coalesce(i.revoked_at, now()) where i.id = inv.id;
end
$$;

revoke execute on function appkit.create_invitation(uuid, text, text, int) from public, anon, authenticated, service_role;
revoke execute on function appkit.lookup_invitation(text) from public, anon, authenticated, service_role;
revoke execute on function appkit.accept_invitation(text) from public, anon, authenticated, service_role;
revoke execute on function appkit.revoke_invitation(uuid) from public, anon, authenticated, service_role;
grant execute on function appkit.create_invitation(uuid, text, text, int) to authenticated, service_role;
grant execute on function appkit.lookup_invitation(text) to anon, authenticated, service_role;
grant execute on function appkit.accept_invitation(text) to authenticated;
grant execute on function appkit.revoke_invitation(uuid) to authenticated, service_role;
