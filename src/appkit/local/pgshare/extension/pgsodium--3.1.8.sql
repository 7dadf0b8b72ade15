-- appkit stand-in for pgsodium: the schema (with pgsodium's roles, which the base schema
-- creates, granted as on Supabase) and the randombytes_* functions over core PostgreSQL.
-- libsodium's crypto_* functions, server keys and transparent column encryption are not
-- available: a call to one fails with "function ... does not exist". Use Vault for secrets.
create function pgsodium.randombytes_buf(size integer) returns bytea language plpgsql volatile as $$
declare
  out bytea := ''::bytea;
begin
  if size < 0 then
    raise exception 'size must be non-negative' using errcode = '22023';
  end if;
  while length(out) < size loop
    out := out || sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
  end loop;
  return substring(out from 1 for size);
end
$$;
create function pgsodium.randombytes_random() returns integer language sql volatile as $$
  select ('x' || encode(pgsodium.randombytes_buf(4), 'hex'))::bit(32)::integer
$$;
create function pgsodium.randombytes_uniform(upper_bound integer) returns integer language sql volatile as $$
  select case when upper_bound < 2 then 0
              else ((('x' || encode(pgsodium.randombytes_buf(8), 'hex'))::bit(64)::bigint & 9223372036854775807)
                    % upper_bound)::integer end
$$;
grant usage on schema pgsodium to pgsodium_keyholder, pgsodium_keyiduser, pgsodium_keymaker;
grant execute on all functions in schema pgsodium to pgsodium_keyiduser;
