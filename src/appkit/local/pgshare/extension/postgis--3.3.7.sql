-- appkit: postgis cannot be installed in the local stack; say so, and what to use instead
do $$
begin
  raise exception 'postgis is not available in the embedded PostgreSQL of the local stack; run the stack on a PostgreSQL that has PostGIS with appkit dev --db-url (SUPABASE_DB_URL)' using errcode = '0A000';
end
$$;
