-- appkit shim of pgTAP 1.2's core: plan/no_plan/finish, ok/is/isnt/pass/fail/diag,
-- lives_ok/throws_ok and has_schema/has_table/has_column/has_function, producing pgTAP's TAP
-- lines. Test state lives in a temporary table per session, as in pgTAP. The rest of pgTAP
-- (results_eq, policies_are, ...) is not here: such a test fails with "function ... does not exist".

create function _tap_state() returns void language plpgsql as $$
begin
  create temp table if not exists __tap_state__ (planned int, ran int not null default 0, failed int not null default 0);
  if not exists (select 1 from __tap_state__) then
    insert into __tap_state__ (planned) values (null);
  end if;
end
$$;

create function plan(integer) returns text language plpgsql as $$
begin
  perform @extschema@._tap_state();
  if (select planned from __tap_state__) is not null then
    raise exception 'You tried to plan twice!';
  end if;
  update __tap_state__ set planned = $1;
  return '1..' || $1;
end
$$;

create function no_plan() returns setof boolean language plpgsql as $$
begin
  perform @extschema@._tap_state();
  return;
end
$$;

create function diag(msg text) returns text language sql as $$
  select '# ' || replace(coalesce(msg, 'NULL'), E'\n', E'\n# ')
$$;

create function ok(boolean, text) returns text language plpgsql as $$
declare
  n int;
  line text;
begin
  perform @extschema@._tap_state();
  update __tap_state__ set ran = ran + 1, failed = failed + (case when $1 then 0 else 1 end) returning ran into n;
  line := case when $1 then 'ok ' else 'not ok ' end || n
          || case when coalesce($2, '') <> '' then ' - ' || replace($2, E'\n', E'\n# ') else '' end;
  if not coalesce($1, false) then
    line := line || E'\n' || @extschema@.diag('    Failed test ' || n
            || case when coalesce($2, '') <> '' then ': "' || $2 || '"' else '' end);
  end if;
  return line;
end
$$;
create function ok(boolean) returns text language sql as $$ select @extschema@.ok($1, null) $$;
create function pass(text) returns text language sql as $$ select @extschema@.ok(true, $1) $$;
create function pass() returns text language sql as $$ select @extschema@.ok(true, null) $$;
create function fail(text) returns text language sql as $$ select @extschema@.ok(false, $1) $$;
create function fail() returns text language sql as $$ select @extschema@.ok(false, null) $$;

create function "is"(anyelement, anyelement, text) returns text language plpgsql as $$
declare
  line text := @extschema@.ok($1 is not distinct from $2, $3);
begin
  if $1 is distinct from $2 then
    line := line || E'\n' || @extschema@.diag('        have: ' || coalesce($1::text, 'NULL')
            || E'\n        want: ' || coalesce($2::text, 'NULL'));
  end if;
  return line;
end
$$;
create function "is"(anyelement, anyelement) returns text language sql as $$ select @extschema@."is"($1, $2, null) $$;
create function isnt(anyelement, anyelement, text) returns text language plpgsql as $$
declare
  line text := @extschema@.ok($1 is distinct from $2, $3);
begin
  if $1 is not distinct from $2 then
    line := line || E'\n' || @extschema@.diag('        have: ' || coalesce($1::text, 'NULL')
            || E'\n        want: anything else');
  end if;
  return line;
end
$$;
create function isnt(anyelement, anyelement) returns text language sql as $$ select @extschema@.isnt($1, $2, null) $$;

create function lives_ok(text, text) returns text language plpgsql as $$
begin
  execute $1;
  return @extschema@.ok(true, $2);
exception when others then
  return @extschema@.ok(false, $2) || E'\n' || @extschema@.diag('    died: ' || sqlstate || ': ' || sqlerrm);
end
$$;
create function lives_ok(text) returns text language sql as $$ select @extschema@.lives_ok($1, null) $$;

-- throws_ok(sql, errcode or message, description): with a 5-character code the SQLSTATE is
-- compared, else the message (pgTAP's two-argument rule)
create function throws_ok(text, text, text) returns text language plpgsql as $$
begin
  execute $1;
  return @extschema@.ok(false, coalesce($3, 'threw ' || coalesce($2, 'an exception'))) || E'\n'
         || @extschema@.diag('    caught: no exception' || E'\n      wanted: ' || coalesce($2, 'an exception'));
exception when others then
  if $2 is null or sqlstate = $2 or sqlerrm = $2 then
    return @extschema@.ok(true, coalesce($3, 'threw ' || coalesce($2, 'an exception')));
  end if;
  return @extschema@.ok(false, coalesce($3, 'threw ' || $2)) || E'\n'
         || @extschema@.diag('      caught: ' || sqlstate || ': ' || sqlerrm || E'\n      wanted: ' || $2);
end
$$;
create function throws_ok(text, text) returns text language sql as $$ select @extschema@.throws_ok($1, $2, null) $$;
create function throws_ok(text) returns text language sql as $$ select @extschema@.throws_ok($1, null, null) $$;

create function has_schema(name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_namespace where nspname = $1), $2)
$$;
create function has_schema(name) returns text language sql as $$
  select @extschema@.has_schema($1, 'Schema ' || quote_ident($1) || ' should exist')
$$;
create function has_table(name, name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                                where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')), $3)
$$;
create function has_table(name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_class c where c.relname = $1 and c.relkind in ('r', 'p')
                                and pg_table_is_visible(c.oid)), $2)
$$;
create function has_table(name) returns text language sql as $$
  select @extschema@.has_table($1, 'Table ' || quote_ident($1) || ' should exist')
$$;
create function has_column(name, name, name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_attribute a join pg_class c on c.oid = a.attrelid
                                join pg_namespace n on n.oid = c.relnamespace
                                where n.nspname = $1 and c.relname = $2 and a.attname = $3
                                and a.attnum > 0 and not a.attisdropped), $4)
$$;
create function has_column(name, name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_attribute a join pg_class c on c.oid = a.attrelid
                                where c.relname = $1 and a.attname = $2 and pg_table_is_visible(c.oid)
                                and a.attnum > 0 and not a.attisdropped), $3)
$$;
create function has_column(name, name) returns text language sql as $$
  select @extschema@.has_column($1, $2, 'Column ' || quote_ident($1) || '.' || quote_ident($2) || ' should exist')
$$;
create function has_function(name, name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                                where n.nspname = $1 and p.proname = $2), $3)
$$;
create function has_function(name, text) returns text language sql as $$
  select @extschema@.ok(exists (select 1 from pg_proc p where p.proname = $1 and pg_function_is_visible(p.oid)), $2)
$$;
create function has_function(name) returns text language sql as $$
  select @extschema@.has_function($1, 'Function ' || quote_ident($1) || '() should exist')
$$;

create function finish(exception_on_failure boolean default null) returns setof text language plpgsql as $$
declare
  s record;
begin
  perform @extschema@._tap_state();
  select * into s from __tap_state__;
  if s.planned is null then
    return next '1..' || s.ran;
  elsif s.planned <> s.ran then
    return next @extschema@.diag('Looks like you planned ' || s.planned || ' test' || case when s.planned = 1 then '' else 's' end
                                 || ' but ran ' || s.ran);
  end if;
  if s.failed > 0 then
    return next @extschema@.diag('Looks like you failed ' || s.failed || ' test' || case when s.failed = 1 then '' else 's' end
                                 || ' of ' || s.ran);
    if exception_on_failure then
      raise exception '% test(s) failed', s.failed;
    end if;
  end if;
  delete from __tap_state__;
  return;
end
$$;
