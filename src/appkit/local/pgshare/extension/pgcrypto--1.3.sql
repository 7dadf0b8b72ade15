-- appkit shim of pgcrypto over core PostgreSQL: gen_random_bytes, digest and hmac.
-- crypt()/gen_salt() are not provided: create seed users through the auth admin API
-- (`appkit users create`) instead of hashing passwords in SQL.
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
