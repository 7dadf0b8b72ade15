-- appkit emulation of pg_net 0.19.5: pg_net's schema, tables, types and functions with its
-- signatures, defaults and error texts. Where pg_net has a background worker written in C, the
-- local stack runs one in Python (appkit/local/net.py): net.wake() sends a notification that is
-- delivered at commit (nothing for a rolled-back transaction); the worker then sends the queued
-- requests and stores each outcome in net._http_response. Differences from pg_net: the two
-- tables are logged (queued requests survive a crash of the server, not only a clean restart),
-- and a request leaves the queue when its response is stored rather than when it is picked up.
create schema if not exists net;

create domain net.http_method as text
check (
  value ilike 'get'
  or value ilike 'post'
  or value ilike 'delete'
);

-- pending requests; the stack's worker reads from here
create table net.http_request_queue(
    id bigserial,
    method net.http_method not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
);
create index on net.http_request_queue (id);

create table net._http_response(
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,
    timed_out bool,
    error_msg text,
    created timestamptz not null default now()
);
create index on net._http_response (created);
create index on net._http_response (id);

-- the worker is the stack's connection named 'pg_net worker'
create function net.check_worker_is_up() returns void language plpgsql as $$
begin
  if not exists (select pid from pg_stat_activity where application_name = 'pg_net worker') then
    raise exception using
      message = 'the pg_net background worker is not up'
    , detail  = 'the pg_net background worker is down due to an internal error and cannot process requests'
    , hint    = 'make sure that you didn''t modify any of pg_net internal tables';
  end if;
end
$$;
comment on function net.check_worker_is_up() is 'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

create function net._await_response(request_id bigint) returns bool language plpgsql parallel unsafe as $$
declare
  rec net._http_response;
begin
  while rec is null loop
    select * into rec from net._http_response where id = request_id;
    if rec is null then
      perform pg_sleep(0.05);
    end if;
  end loop;
  return true;
end;
$$;

-- curl_easy_escape: every byte but A-Z a-z 0-9 - . _ ~ percent-encoded
create function net._urlencode_string(string varchar) returns text language plpgsql immutable as $$
declare
  raw bytea;
  out text := '';
  b int;
begin
  if string is null then
    return null;
  end if;
  raw := convert_to(string, 'UTF8');
  for i in 0 .. length(raw) - 1 loop
    b := get_byte(raw, i);
    if (b between 48 and 57) or (b between 65 and 90) or (b between 97 and 122) or b in (45, 46, 95, 126) then
      out := out || chr(b);
    else
      out := out || '%' || upper(lpad(to_hex(b), 2, '0'));
    end if;
  end loop;
  return out;
end
$$;

-- curl's URL parser, as far as pg_net's callers meet it: the same errors for a URL curl refuses
-- ('invalid URL "<url>": <curl's reason>'), the query parameters appended, an empty path made '/'
create function net._encode_url_with_params_array(url text, params_array text[]) returns text
language plpgsql immutable as $$
declare
  m text[];
  scheme text;
  rest text;
  authority text;
  tail text;
  host text;
  port text;
  fragment text := '';
  param text;
begin
  if url is null or params_array is null then
    return null;
  end if;
  if url ~ '[\s\x01-\x1f\x7f]' then
    raise exception 'invalid URL "%": Malformed input to a URL function', url;
  end if;
  m := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$');
  if m is null then
    if url ~ '^[A-Za-z][A-Za-z0-9+.-]*:' then
      raise exception 'invalid URL "%": Unsupported URL scheme', url;
    end if;
    raise exception 'invalid URL "%": Bad scheme', url;
  end if;
  scheme := lower(m[1]);
  rest := m[2];
  if scheme not in ('http', 'https', 'ftp', 'ftps', 'file', 'dict', 'gopher', 'gophers', 'imap', 'imaps', 'ldap',
                    'ldaps', 'mqtt', 'pop3', 'pop3s', 'rtmp', 'rtsp', 'scp', 'sftp', 'smb', 'smbs', 'smtp', 'smtps',
                    'telnet', 'tftp', 'ws', 'wss') then
    raise exception 'invalid URL "%": Unsupported URL scheme', url;
  end if;
  authority := substring(rest from '^[^/?#]*');
  tail := substring(rest from length(authority) + 1);
  -- userinfo@ is kept; the host is what follows it
  host := regexp_replace(authority, '^.*@', '');
  if host ~ '^\[' then
    port := substring(host from '^\[[^\]]*\]:(.*)$');
    if host !~ '^\[[0-9A-Fa-f:.]+\](:.*)?$' then
      raise exception 'invalid URL "%": Bad IPv6 address', url;
    end if;
    host := substring(host from '^(\[[^\]]*\])');
  else
    port := substring(host from ':(.*)$');
    host := regexp_replace(host, ':.*$', '');
  end if;
  if host = '' and scheme <> 'file' then
    raise exception 'invalid URL "%": No host part in the URL', url;
  end if;
  if port is not null and port <> '' and (port !~ '^[0-9]+$' or length(port) > 5 or port::int > 65535) then
    raise exception 'invalid URL "%": Port number was not a decimal number between 0 and 65535', url;
  end if;
  if position('#' in tail) > 0 then
    fragment := substring(tail from position('#' in tail));
    tail := substring(tail from 1 for position('#' in tail) - 1);
  end if;
  if tail = '' or tail ~ '^\?' then
    tail := '/' || tail;
  end if;
  foreach param in array params_array loop
    continue when param is null;
    if position('?' in tail) > 0 then
      tail := tail || case when tail ~ '[?&]$' then '' else '&' end || param;
    else
      tail := tail || '?' || param;
    end if;
  end loop;
  return scheme || '://' || authority || tail || fragment;
end
$$;

-- the stack's worker listens on channel appkit_net: the notification is delivered at commit
create function net.wake() returns void language sql as $$ select pg_notify('appkit_net', '') $$;

create function net.worker_restart() returns bool language plpgsql security definer set search_path = '' as $$
begin
  perform pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity
   where application_name = 'pg_net worker' and datname = pg_catalog.current_database();
  return true;
end
$$;

create function net.wait_until_running() returns void language plpgsql as $$
begin
  for i in 1 .. 600 loop
    perform pg_stat_clear_snapshot();  -- pg_stat_activity is otherwise read once per transaction
    if exists (select 1 from pg_stat_activity where application_name = 'pg_net worker') then
      return;
    end if;
    perform pg_sleep(0.05);
  end loop;
  perform net.check_worker_is_up();
end
$$;
comment on function net.wait_until_running() is 'waits until the worker is running';

create function net.http_get(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, timeout_milliseconds)
    values ('GET', net._encode_url_with_params_array(url, params_array), headers, timeout_milliseconds)
    returning id into request_id;

    perform net.wake();
    return request_id;
end
$$;

create function net.http_post(
    -- url for the request
    url text,
    -- body of the POST request
    body jsonb default '{}'::jsonb,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
    content_type text;
begin
    select header_value into content_type
    from jsonb_each_text(coalesce(headers, '{}'::jsonb)) r(header_name, header_value)
    where lower(header_name) = 'content-type'
    limit 1;

    -- headers without a content type get pg_net's default one
    if content_type is null then
        select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
    end if;

    if content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;

    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values ('POST', net._encode_url_with_params_array(url, params_array), headers,
            convert_to(body::text, 'UTF8'), timeout_milliseconds)
    returning id into request_id;

    perform net.wake();
    return request_id;
end
$$;

create function net.http_delete(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000,
    -- optional body of the request
    body jsonb default null
)
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values ('DELETE', net._encode_url_with_params_array(url, params_array), headers,
            convert_to(body::text, 'UTF8'), timeout_milliseconds)
    returning id into request_id;

    perform net.wake();
    return request_id;
end
$$;

create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');

create type net.http_response as (
    status_code integer,
    headers jsonb,
    body text
);

create type net.http_response_result as (
    status net.request_status,
    message text,
    response net.http_response
);

create function net._http_collect_response(request_id bigint, async bool default true)
    returns net.http_response_result
    language plpgsql
    parallel unsafe
as $$
declare
    rec net._http_response;
begin
    if not async then
        perform net._await_response(request_id);
    end if;

    select * into rec from net._http_response where id = request_id;

    if rec is null or rec.error_msg is not null then
        -- the request was not found (or it errored)
        return ('ERROR', coalesce(rec.error_msg, 'request matching request_id not found'), null)::net.http_response_result;
    end if;

    return ('SUCCESS', 'ok', (rec.status_code, rec.headers, rec.content)::net.http_response)::net.http_response_result;
end;
$$;

create function net.http_collect_response(request_id bigint, async bool default true)
    returns net.http_response_result
    language plpgsql
    parallel unsafe
as $$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  return net._http_collect_response(request_id, async);
end;
$$;

grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
