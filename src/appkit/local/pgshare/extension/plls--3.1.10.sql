-- appkit: plls cannot be installed in the local stack; say so, and what to use instead
do $$
begin
  raise exception 'plls is not available: it was retired with plv8; write the function in PL/pgSQL or SQL, or move the code to an Edge Function' using errcode = '0A000';
end
$$;
