-- Profiles: one appkit.profiles row per auth user (display name, avatar URL, metadata),
-- created by a trigger on auth.users insert and deleted with the user (foreign key cascade).
-- A user reads and updates their own; members of the same organization read each other's.

create table appkit.profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  display_name text check (char_length(display_name) <= 200),
  avatar_url text check (avatar_url is null
                         or (char_length(avatar_url) <= 2048 and avatar_url ~* '^https?://[^[:space:]]+$')),
  metadata jsonb not null default '{}'::jsonb
    check (jsonb_typeof(metadata) = 'object' and octet_length(metadata::text) <= 16384),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table appkit.profiles is 'One profile per auth user; own rows writable, org co-members readable.';

create or replace function appkit._profiles_touch()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
revoke execute on function appkit._profiles_touch() from public;
create trigger profiles_touch before update on appkit.profiles
  for each row execute function appkit._profiles_touch();

-- A new auth user gets a profile from their sign-up metadata (display_name / full_name / name,
-- avatar_url / picture). Values that would not fit are dropped, never failing the sign-up.
create or replace function appkit._profile_for_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  meta jsonb := case when jsonb_typeof(new.raw_user_meta_data) = 'object' then new.raw_user_meta_data
                     else '{}'::jsonb end;
  name text := left(coalesce(meta ->> 'display_name', meta ->> 'full_name', meta ->> 'name'), 200);
  avatar text := coalesce(meta ->> 'avatar_url', meta ->> 'picture');
begin
  if avatar is not null and (char_length(avatar) > 2048 or avatar !~* '^https?://[^[:space:]]+$') then
    avatar := null;
  end if;
  insert into appkit.profiles (user_id, display_name, avatar_url)
  values (new.id, name, avatar)
  on conflict (user_id) do nothing;
  return null;
end;
$$;
revoke execute on function appkit._profile_for_new_user() from public;
create trigger appkit_profile_for_new_user after insert on auth.users
  for each row execute function appkit._profile_for_new_user();

-- users who signed up before this migration
insert into appkit.profiles (user_id, display_name)
select u.id, left(coalesce(u.raw_user_meta_data ->> 'display_name', u.raw_user_meta_data ->> 'full_name',
                           u.raw_user_meta_data ->> 'name'), 200)
  from auth.users u
on conflict (user_id) do nothing;

alter table appkit.profiles enable row level security;
revoke all on table appkit.profiles from public, anon, authenticated, service_role;
grant select on table appkit.profiles to authenticated;
grant update (display_name, avatar_url, metadata) on table appkit.profiles to authenticated;
grant select, insert, update, delete on table appkit.profiles to service_role;

create policy profiles_read_own_and_co_members on appkit.profiles for select to authenticated
  using (user_id = (select auth.uid())
         or user_id in (select m.user_id from appkit.memberships m
                         where m.org_id in (select appkit.org_ids_with_role('viewer'))));
create policy profiles_update_own on appkit.profiles for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
