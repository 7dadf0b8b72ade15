-- appkit emulation of Supabase Vault 0.3.1: vault.secrets, vault.decrypted_secrets,
-- vault.create_secret and vault.update_secret with Vault's names, columns, defaults and grants.
--
-- Where Vault encrypts with libsodium (deterministic XChaCha20 AEAD, key derived from a server
-- key outside SQL), this emulation encrypts in SQL with what core PostgreSQL has: a
-- deterministic authenticated cipher built from HMAC-SHA256 (keystream block i =
-- HMAC(k_enc, nonce || i), tag = HMAC(k_mac, nonce || associated data || ciphertext), the
-- secret's id as associated data as Vault binds it; k_enc and k_mac derived from the root key
-- and the context). The 32-byte root key is the file appkit_vault.key in the server's data
-- directory, written by the local stack when it creates the cluster: it is never in the
-- database, so never in a dump, and only the security-definer functions below read it.
-- `secret` holds base64(tag || ciphertext), as Vault's holds base64 of its ciphertext.

-- the root key; no role but its owner may call it
create function vault._root_key() returns bytea
language plpgsql stable security definer set search_path = '' as $$
declare
  k bytea := pg_catalog.pg_read_binary_file('appkit_vault.key', true);
begin
  if k is null or pg_catalog.length(k) <> 32 then
    raise exception 'vault: the encryption key is not available'
      using errcode = '58P01',
            hint = 'Vault''s key is the file appkit_vault.key in the local stack''s data directory '
                   '(supabase/.appkit/pgdata); it exists only on the local stack''s embedded database';
  end if;
  return k;
end
$$;

create function vault._hmac(key bytea, message bytea) returns bytea
language plpgsql immutable strict parallel safe set search_path = '' as $$
declare
  k bytea := key;
  ipad bytea;
  opad bytea;
begin
  if pg_catalog.length(k) > 64 then
    k := pg_catalog.sha256(k);
  end if;
  k := k || pg_catalog.decode(pg_catalog.repeat('00', 64 - pg_catalog.length(k)), 'hex');
  ipad := k;
  opad := k;
  for i in 0 .. 63 loop
    ipad := pg_catalog.set_byte(ipad, i, pg_catalog.get_byte(k, i) # 54);
    opad := pg_catalog.set_byte(opad, i, pg_catalog.get_byte(k, i) # 92);
  end loop;
  return pg_catalog.sha256(opad || pg_catalog.sha256(ipad || message));
end
$$;

create function vault._crypto_aead_det_noncegen() returns bytea
language sql volatile set search_path = '' as $$
  select pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
$$;

-- message XOR keystream(k_enc, nonce)
create function vault._keystream_xor(message bytea, k bytea, nonce bytea) returns bytea
language plpgsql immutable strict parallel safe set search_path = '' as $$
declare
  out bytea := message;
  block bytea;
begin
  for i in 0 .. pg_catalog.length(message) - 1 loop
    if i % 32 = 0 then
      block := vault._hmac(k, nonce || pg_catalog.int4send(i / 32));
    end if;
    out := pg_catalog.set_byte(out, i, pg_catalog.get_byte(message, i) # pg_catalog.get_byte(block, i % 32));
  end loop;
  return out;
end
$$;

-- the 16-byte authentication tag of ciphertext ct with associated data ad
create function vault._tag(k bytea, nonce bytea, ad bytea, ct bytea) returns bytea
language sql immutable parallel safe set search_path = '' as $$
  select pg_catalog.substr(vault._hmac(k, nonce || pg_catalog.int4send(pg_catalog.length(coalesce(ad, ''::bytea)))
                                          || coalesce(ad, ''::bytea) || ct), 1, 16)
$$;

create function vault._crypto_aead_det_encrypt(message bytea, additional bytea, key_id bigint,
                                               context bytea = 'pgsodium', nonce bytea = null)
returns bytea language plpgsql volatile security definer set search_path = '' as $$
declare
  root bytea := vault._root_key();
  n bytea := coalesce(nonce, pg_catalog.decode(pg_catalog.repeat('00', 16), 'hex'));
  info bytea := coalesce(context, ''::bytea) || pg_catalog.int8send(key_id);
  ct bytea;
begin
  if message is null then
    return null;
  end if;
  ct := vault._keystream_xor(message, vault._hmac(root, 'enc'::bytea || info), n);
  return vault._tag(vault._hmac(root, 'mac'::bytea || info), n, additional, ct) || ct;
end
$$;

create function vault._crypto_aead_det_decrypt(message bytea, additional bytea, key_id bigint,
                                               context bytea = 'pgsodium', nonce bytea = null)
returns bytea language plpgsql volatile security definer set search_path = '' as $$
declare
  root bytea := vault._root_key();
  n bytea := coalesce(nonce, pg_catalog.decode(pg_catalog.repeat('00', 16), 'hex'));
  info bytea := coalesce(context, ''::bytea) || pg_catalog.int8send(key_id);
  ct bytea;
begin
  if message is null then
    return null;
  end if;
  ct := pg_catalog.substr(message, 17);
  if pg_catalog.length(message) < 16
     or pg_catalog.substr(message, 1, 16) <> vault._tag(vault._hmac(root, 'mac'::bytea || info), n, additional, ct) then
    raise exception 'pgsodium_crypto_aead_det_decrypt_by_id: invalid message' using errcode = '22000';
  end if;
  return vault._keystream_xor(ct, vault._hmac(root, 'enc'::bytea || info), n);
end
$$;

create table vault.secrets (
  id uuid     primary key default gen_random_uuid(),
  name        text,
  description text not null default '',
  secret      text not null,
  key_id      uuid,
  nonce       bytea default vault._crypto_aead_det_noncegen(),
  created_at  timestamptz not null default current_timestamp,
  updated_at  timestamptz not null default current_timestamp
);

comment on table vault.secrets is 'Table with encrypted `secret` column for storing sensitive information on disk.';

create unique index on vault.secrets using btree (name) where name is not null;

create view vault.decrypted_secrets as
select s.id,
  s.name,
  s.description,
  s.secret,
  convert_from(
    vault._crypto_aead_det_decrypt(
      message := decode(s.secret, 'base64'::text),
      additional := convert_to(s.id::text, 'utf8'),
      key_id := 0,
      context := 'pgsodium'::bytea,
      nonce := s.nonce
    ),
    'utf8'::name
  ) as decrypted_secret,
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
from vault.secrets s;

create function vault.create_secret(
  new_secret text,
  new_name text = null,
  new_description text = '',
  -- unused
  new_key_id uuid = null
)
returns uuid
security definer
language plpgsql
set search_path = ''
as $$
declare
  -- encrypted before it is written: the plain text never reaches a table page or the WAL
  new_id uuid := gen_random_uuid();
  new_nonce bytea := vault._crypto_aead_det_noncegen();
begin
  insert into vault.secrets (id, secret, name, description, nonce)
  values (
    new_id,
    encode(vault._crypto_aead_det_encrypt(
      message := convert_to(new_secret, 'utf8'),
      additional := convert_to(new_id::text, 'utf8'),
      key_id := 0,
      context := 'pgsodium'::bytea,
      nonce := new_nonce
    ), 'base64'),
    new_name,
    new_description,
    new_nonce
  );
  return new_id;
end
$$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text = null,
  new_name text = null,
  new_description text = null,
  -- unused
  new_key_id uuid = null
)
returns void
security definer
language plpgsql
set search_path = ''
as $$
begin
  update vault.secrets s
  set
    secret = case when new_secret is null then s.secret
                  else encode(vault._crypto_aead_det_encrypt(
                    message := convert_to(new_secret, 'utf8'),
                    additional := convert_to(s.id::text, 'utf8'),
                    key_id := 0,
                    context := 'pgsodium'::bytea,
                    nonce := s.nonce
                  ), 'base64') end,
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = now()
  where s.id = secret_id;
end
$$;

revoke all on function
  vault._root_key,
  vault._hmac,
  vault._keystream_xor,
  vault._tag,
  vault._crypto_aead_det_encrypt,
  vault._crypto_aead_det_decrypt,
  vault._crypto_aead_det_noncegen,
  vault.create_secret,
  vault.update_secret
from public;
revoke all on schema vault from public;
revoke all on vault.secrets, vault.decrypted_secrets from public;

select pg_catalog.pg_extension_config_dump('vault.secrets', '');
