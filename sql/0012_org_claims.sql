-- Optional: memberships in the access token. Configured as Supabase's custom access token hook
-- ([auth.hook.custom_access_token] uri = "pg-functions://postgres/appkit/custom_access_token_hook"),
-- it stamps the user's organizations into the `appkit_orgs` claim as {"<org id>": "<role>"};
-- appkit's RLS helpers then read roles from the token instead of the tables. Roles in a token
-- change only when the token is refreshed (at most the JWT expiry, 1 hour by default). A user
-- in more than 100 organizations gets no claim, and the helpers read the tables.

create or replace function appkit.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  uid uuid;
  orgs jsonb;
  n int;
begin
  if jsonb_typeof(claims) <> 'object' then
    return event;
  end if;
  begin
    uid := (event ->> 'user_id')::uuid;
  exception when invalid_text_representation then
    return event;
  end;
  select coalesce(jsonb_object_agg(x.org_id::text, x.role), '{}'::jsonb), count(*)
  into orgs, n
  from (select m.org_id, m.role from appkit.memberships m where m.user_id = uid
        order by m.created_at, m.org_id limit 101) x;
  if n > 100 then
    claims := claims - 'appkit_orgs';
  else
    claims := jsonb_set(claims, '{appkit_orgs}', orgs);
  end if;
  return jsonb_set(event, '{claims}', claims);
end
$$;
revoke execute on function appkit.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;
grant usage on schema appkit to supabase_auth_admin;
grant execute on function appkit.custom_access_token_hook(jsonb) to supabase_auth_admin;
