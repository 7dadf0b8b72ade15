-- appkit shim of uuid-ossp 1.1 over core PostgreSQL (the embedded server lacks the C module).
create function uuid_nil() returns uuid language sql immutable parallel safe
  as $$ select '00000000-0000-0000-0000-000000000000'::uuid $$;
create function uuid_ns_dns() returns uuid language sql immutable parallel safe
  as $$ select '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function uuid_ns_url() returns uuid language sql immutable parallel safe
  as $$ select '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function uuid_ns_oid() returns uuid language sql immutable parallel safe
  as $$ select '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function uuid_ns_x500() returns uuid language sql immutable parallel safe
  as $$ select '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

create function uuid_generate_v4() returns uuid language sql volatile parallel safe
  as $$ select gen_random_uuid() $$;

-- Version 1 with a random multicast node id (what uuid_generate_v1mc does; v1 uses it too,
-- since the server has no access to a MAC address here).
create function uuid_generate_v1mc() returns uuid language sql volatile parallel safe as $$
  with t as (
    select (floor(extract(epoch from clock_timestamp()) * 10000000)::bigint + 122192928000000000) as ts,
           uuid_send(gen_random_uuid()) as r
  )
  select (
    lpad(to_hex(ts & x'ffffffff'::bigint), 8, '0') ||
    lpad(to_hex((ts >> 32) & x'ffff'::bigint), 4, '0') ||
    lpad(to_hex(((ts >> 48) & x'0fff'::bigint) | x'1000'::bigint), 4, '0') ||
    lpad(to_hex(((get_byte(r, 8) << 8 | get_byte(r, 9)) & x'3fff'::int) | x'8000'::int), 4, '0') ||
    lpad(to_hex(get_byte(r, 10) | 1), 2, '0') ||
    encode(substring(r from 12 for 5), 'hex')
  )::uuid
  from t
$$;
create function uuid_generate_v1() returns uuid language sql volatile parallel safe
  as $$ select @extschema@.uuid_generate_v1mc() $$;

create function uuid_generate_v3(namespace uuid, name text) returns uuid language sql immutable parallel safe as $$
  with h as (select decode(md5(uuid_send(namespace) || convert_to(name, 'UTF8')), 'hex') as d)
  select encode(
    set_byte(set_byte(d, 6, (get_byte(d, 6) & 15) | 48), 8, (get_byte(d, 8) & 63) | 128), 'hex')::uuid
  from h
$$;
