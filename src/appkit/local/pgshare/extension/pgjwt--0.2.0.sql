-- appkit shim of pgjwt 0.2.0: the same functions, arguments and results, written over the
-- pgcrypto shim's hmac(). HS256, HS384 and HS512; `valid` is the signature check and the
-- nbf/exp window (a missing bound is open), as pgjwt computes it.

create function url_encode(data bytea) returns text language sql immutable as $$
  select translate(encode(data, 'base64'), E'+/=\n', '-_')
$$;

create function url_decode(data text) returns bytea language sql immutable as $$
  select decode(rpad(translate(data, '-_', '+/'), ((length(data) + 3) / 4) * 4, '='), 'base64')
$$;

create function algorithm_sign(signables text, secret text, algorithm text) returns text
language sql immutable as $$
  select @extschema@.url_encode(@extschema:pgcrypto@.hmac(
    signables, secret,
    case algorithm when 'HS256' then 'sha256' when 'HS384' then 'sha384' when 'HS512' then 'sha512' else '' end))
$$;

create function sign(payload json, secret text, algorithm text default 'HS256') returns text
language sql immutable as $$
  select s || '.' || @extschema@.algorithm_sign(s, secret, algorithm)
  from (select @extschema@.url_encode(convert_to('{"alg":"' || algorithm || '","typ":"JWT"}', 'utf8'))
               || '.' || @extschema@.url_encode(convert_to(payload::text, 'utf8')) as s) signables
$$;

create function try_cast_double(inp text) returns double precision language plpgsql immutable as $$
begin
  return inp::double precision;
exception when others then
  return null;
end
$$;

create function verify(token text, secret text, algorithm text default 'HS256')
returns table(header json, payload json, valid boolean) language sql immutable as $$
  select h, p,
         ok and tstzrange(to_timestamp(@extschema@.try_cast_double(p ->> 'nbf')),
                          to_timestamp(@extschema@.try_cast_double(p ->> 'exp'))) @> current_timestamp
  from (
    select convert_from(@extschema@.url_decode(part[1]), 'utf8')::json as h,
           convert_from(@extschema@.url_decode(part[2]), 'utf8')::json as p,
           part[3] = @extschema@.algorithm_sign(part[1] || '.' || part[2], secret, algorithm) as ok
    from regexp_split_to_array(token, '\.') as part
  ) jwt
$$;
