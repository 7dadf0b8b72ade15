-- Supabase Vault, installed in every Supabase project (schema vault), with the grants the
-- Supabase postgres image gives: postgres and service_role may read and delete secrets and
-- call create_secret/update_secret; anon and authenticated get nothing. appkit's emulation
-- (pgshare/extension/supabase_vault*) keeps its key in the server's data directory
-- (appkit/local/vault.py writes it); see docs/vault.md.
create extension if not exists supabase_vault;

grant usage on schema vault to postgres with grant option;
grant select, delete, truncate, references on vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt to postgres with grant option;
grant usage on schema vault to service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt to service_role;
