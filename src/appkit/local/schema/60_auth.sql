-- appkit's local auth service: outgoing e-mail and SMS are captured here instead of sent
-- (like the Supabase CLI's mail catcher). Not part of Supabase's schema.
create schema if not exists _appkit;
grant usage on schema _appkit to supabase_auth_admin;

create table if not exists _appkit.auth_messages (
  id bigserial primary key,
  created_at timestamptz not null default now(),
  channel text not null check (channel in ('email', 'sms')),
  recipient text not null,
  type text not null,
  subject text,
  body text not null,
  link text,
  otp text,
  token_hash text,
  redirect_to text,
  user_id uuid
);
create index if not exists auth_messages_recipient_idx on _appkit.auth_messages (lower(recipient), id desc);
grant select, insert, delete on _appkit.auth_messages to supabase_auth_admin;
grant usage, select on sequence _appkit.auth_messages_id_seq to supabase_auth_admin;
