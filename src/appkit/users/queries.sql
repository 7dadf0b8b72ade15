-- Direct-Postgres queries of users import/export (appkit.users.bulk).

-- name: create_staging
-- a session-local table the COPY fills; dropped at commit
create temp table appkit_user_import (
    id uuid not null,
    email text,
    phone text,
    encrypted_password text,
    email_confirmed_at timestamptz,
    phone_confirmed_at timestamptz,
    role text not null,
    user_metadata jsonb not null,
    app_metadata jsonb not null,
    banned_until timestamptz,
    created_at timestamptz
) on commit drop;

-- name: copy_staging
copy appkit_user_import (id, email, phone, encrypted_password, email_confirmed_at, phone_confirmed_at, role,
                         user_metadata, app_metadata, banned_until, created_at) from stdin;

-- name: first_conflict
-- the first staged user whose id, email or phone is already taken
select i.id::text, i.email, i.phone,
       case when exists (select 1 from auth.users u where u.id = i.id) then 'id'
            when exists (select 1 from auth.users u where u.email = i.email) then 'email'
            else 'phone' end as what
  from appkit_user_import i
 where exists (select 1 from auth.users u where u.id = i.id)
    or (i.email is not null and exists (select 1 from auth.users u where u.email = i.email))
    or (i.phone is not null and exists (select 1 from auth.users u where u.phone = i.phone))
 limit 1;

-- name: delete_existing
-- with --skip-existing: drop staged users that are already there
delete from appkit_user_import i
 where exists (select 1 from auth.users u where u.id = i.id)
    or (i.email is not null and exists (select 1 from auth.users u where u.email = i.email))
    or (i.phone is not null and exists (select 1 from auth.users u where u.phone = i.phone));

-- name: insert_users
-- the users, with the provider bookkeeping GoTrue keeps in raw_app_meta_data / raw_user_meta_data
insert into auth.users (instance_id, id, aud, role, email, phone, encrypted_password, email_confirmed_at,
                        phone_confirmed_at, raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at,
                        updated_at, is_anonymous, is_sso_user, banned_until, confirmation_token, recovery_token,
                        email_change_token_new, email_change)
select '00000000-0000-0000-0000-000000000000', i.id, 'authenticated', i.role, i.email, i.phone,
       coalesce(i.encrypted_password, ''), i.email_confirmed_at, i.phone_confirmed_at,
       jsonb_build_object('provider', case when i.email is not null then 'email' else 'phone' end,
                          'providers', case when i.email is null then '["phone"]'::jsonb
                                            when i.phone is null then '["email"]'::jsonb
                                            else '["email", "phone"]'::jsonb end) || i.app_metadata,
       i.user_metadata || jsonb_strip_nulls(jsonb_build_object(
           'sub', i.id::text, 'email', i.email,
           'email_verified', i.email is not null and i.email_confirmed_at is not null,
           'phone_verified', i.phone is not null and i.phone_confirmed_at is not null)),
       false, coalesce(i.created_at, now()), now(), false, false, i.banned_until, '', '', '', ''
  from appkit_user_import i;

-- name: insert_identities
-- one email and/or phone identity per user (provider_id is the user id, as GoTrue does)
insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
select i.id::text, i.id, jsonb_build_object('sub', i.id::text, 'email', i.email,
                                            'email_verified', i.email_confirmed_at is not null,
                                            'phone_verified', false), 'email', now(), now()
  from appkit_user_import i where i.email is not null
union all
select i.id::text, i.id, jsonb_build_object('sub', i.id::text, 'phone', i.phone, 'email_verified', false,
                                            'phone_verified', i.phone_confirmed_at is not null), 'phone', now(), now()
  from appkit_user_import i where i.phone is not null;

-- name: export_users
-- every user that is not (soft-)deleted, oldest first
select id::text, email, nullif(phone, ''), nullif(encrypted_password, ''), email_confirmed_at, phone_confirmed_at,
       coalesce(role, 'authenticated'), coalesce(raw_user_meta_data, '{}'), coalesce(raw_app_meta_data, '{}'),
       banned_until, created_at
  from auth.users
 where deleted_at is null
 order by created_at, id;
