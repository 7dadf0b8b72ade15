-- appkit shim of pgcrypto over core PostgreSQL: gen_random_bytes, digest, hmac, and
-- crypt()/gen_salt('bf') with a PBKDF2 format the auth service upgrades (see below).
create function gen_random_bytes(integer) returns bytea language plpgsql volatile parallel safe as $$
declare
  result bytea := ''::bytea;
  r bytea;
begin
  if $1 < 1 or $1 > 1024 then
    raise exception 'Length not in range' using errcode = '22023';
  end if;
  while length(result) < $1 loop
    r := uuid_send(gen_random_uuid());
    -- every byte of a v4 uuid is random except byte 6 (version) and byte 8 (variant)
    result := result || substring(r from 1 for 6) || substring(r from 8 for 1) || substring(r from 10 for 7);
  end loop;
  return substring(result from 1 for $1);
end
$$;

create function digest(bytea, text) returns bytea language plpgsql immutable strict parallel safe as $$
begin
  case lower($2)
    when 'md5' then return decode(md5($1), 'hex');
    when 'sha224' then return sha224($1);
    when 'sha256' then return sha256($1);
    when 'sha384' then return sha384($1);
    when 'sha512' then return sha512($1);
    else raise exception 'Cannot use "%": No such hash algorithm', $2 using errcode = '22023';
  end case;
end
$$;
create function digest(text, text) returns bytea language sql immutable strict parallel safe
  as $$ select @extschema@.digest(convert_to($1, 'UTF8'), $2) $$;

create function hmac(bytea, bytea, text) returns bytea language plpgsql immutable strict parallel safe as $$
declare
  block int := case when lower($3) in ('sha384', 'sha512') then 128 else 64 end;
  k bytea := $2;
  ipad bytea;
  opad bytea;
  i int;
begin
  if length(k) > block then
    k := @extschema@.digest(k, $3);
  end if;
  k := k || decode(repeat('00', block - length(k)), 'hex');
  ipad := k;
  opad := k;
  for i in 0 .. block - 1 loop
    ipad := set_byte(ipad, i, get_byte(k, i) # 54);
    opad := set_byte(opad, i, get_byte(k, i) # 92);
  end loop;
  return @extschema@.digest(opad || @extschema@.digest(ipad || $1, $3), $3);
end
$$;
create function hmac(text, text, text) returns bytea language sql immutable strict parallel safe
  as $$ select @extschema@.hmac(convert_to($1, 'UTF8'), convert_to($2, 'UTF8'), $3) $$;

-- crypt()/gen_salt('bf') for seed files. Real bcrypt needs C (in PL/pgSQL it takes seconds
-- per hash), so gen_salt('bf') answers a PBKDF2-HMAC-SHA256 salt in passlib's modular
-- format ($pbkdf2-sha256$<iterations>$<salt>) and crypt() completes it to
-- $pbkdf2-sha256$<iterations>$<salt>$<hash> (adapted base64: '.' for '+', no padding).
-- appkit's auth service verifies that format and replaces it by a bcrypt hash (cost 10,
-- as Supabase Auth) at the user's first sign-in. crypt(pw, hash) recomputes a hash of this
-- format, so `encrypted_password = crypt('pw', encrypted_password)` works in SQL for the
-- hashes made here; bcrypt hashes ($2a$/$2b$/$2y$) cannot be checked here and raise 0A000.
create function _appkit_ab64(bytea) returns text language sql immutable strict parallel safe
  as $$ select rtrim(translate(encode($1, 'base64'), E'+\n', '.'), '=') $$;

create function _appkit_ab64_decode(text) returns bytea language sql immutable strict parallel safe
  as $$ select decode(rpad(translate($1, '.', '+'), (length($1) + 3) / 4 * 4, '='), 'base64') $$;

create function _appkit_pbkdf2_sha256(password bytea, salt bytea, iterations integer)
returns bytea language plpgsql immutable strict parallel safe as $$
declare
  k bytea := password;
  ikey bytea;
  okey bytea;
  u bytea;
  t bit(256);
  out text := '';
  i int;
begin
  -- HMAC-SHA256 keyed by the password, inner and outer pads computed once
  if length(k) > 64 then
    k := sha256(k);
  end if;
  k := k || decode(repeat('00', 64 - length(k)), 'hex');
  ikey := k;
  okey := k;
  for i in 0 .. 63 loop
    ikey := set_byte(ikey, i, get_byte(k, i) # 54);
    okey := set_byte(okey, i, get_byte(k, i) # 92);
  end loop;
  -- one output block (32 bytes): U1 = HMAC(salt || INT(1)), Un = HMAC(Un-1), T = U1 ^ ... ^ Uc
  u := sha256(okey || sha256(ikey || salt || '\x00000001'::bytea));
  t := ('x' || encode(u, 'hex'))::bit(256);
  for i in 2 .. iterations loop
    u := sha256(okey || sha256(ikey || u));
    t := t # ('x' || encode(u, 'hex'))::bit(256);
  end loop;
  for i in 0 .. 3 loop
    out := out || lpad(to_hex(substring(t from i * 64 + 1 for 64)::bigint), 16, '0');
  end loop;
  return decode(out, 'hex');
end
$$;

create function gen_salt(text) returns text language sql volatile strict parallel safe
  as $$ select @extschema@.gen_salt($1, 10) $$;

create function gen_salt(text, integer) returns text language plpgsql volatile strict parallel safe as $$
begin
  if lower($1) <> 'bf' then
    if lower($1) in ('md5', 'des', 'xdes') then
      raise exception 'gen_salt: % salts are not available in the embedded server (appkit shim); use gen_salt(''bf'')', $1
        using errcode = '0A000';
    end if;
    raise exception 'gen_salt: Unknown salt algorithm' using errcode = '22023';
  end if;
  if $2 < 4 or $2 > 31 then
    raise exception 'gen_salt: Incorrect number of rounds' using errcode = '22023';
  end if;
  -- the bcrypt cost does not carry over: PBKDF2 runs a fixed 4096 iterations
  return '$pbkdf2-sha256$4096$' || @extschema@._appkit_ab64(@extschema@.gen_random_bytes(16));
end
$$;

create function crypt(text, text) returns text language plpgsql immutable strict parallel safe as $$
declare
  parts text[] := string_to_array($2, '$');
  iterations int;
  salt bytea;
begin
  if $2 ~ '^\$2[abxy]?\$' then
    raise exception 'crypt: bcrypt hashes cannot be computed in the embedded server (appkit shim)'
      using errcode = '0A000',
            hint = 'hashes made by crypt(pw, gen_salt(''bf'')) here can; the auth service checks bcrypt ones';
  end if;
  if parts[2] is distinct from 'pbkdf2-sha256' or parts[3] !~ '^[0-9]{1,7}$' or coalesce(parts[4], '') !~ '^[A-Za-z0-9./]{4,}$' then
    raise exception 'invalid salt' using errcode = '22023';
  end if;
  iterations := parts[3]::int;
  if iterations < 1 then
    raise exception 'invalid salt' using errcode = '22023';
  end if;
  salt := @extschema@._appkit_ab64_decode(parts[4]);
  return '$pbkdf2-sha256$' || iterations || '$' || parts[4] || '$'
    || @extschema@._appkit_ab64(@extschema@._appkit_pbkdf2_sha256(convert_to($1, 'UTF8'), salt, iterations));
end
$$;
