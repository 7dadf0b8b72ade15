-- appkit: plv8 cannot be installed in the local stack; say so, and what to use instead
do $$
begin
  raise exception 'plv8 is not available: Supabase deprecated plv8 (no PostgreSQL 17 project has it) and the local stack cannot run it; write the function in PL/pgSQL or SQL, or move the JavaScript to an Edge Function' using errcode = '0A000';
end
$$;
