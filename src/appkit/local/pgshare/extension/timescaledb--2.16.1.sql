-- appkit: timescaledb cannot be installed in the local stack; say so, and what to use instead
do $$
begin
  raise exception 'timescaledb is not available: Supabase deprecated it (no PostgreSQL 17 project has it) and the local stack cannot run it; use native table partitioning (or pg_partman on Supabase)' using errcode = '0A000';
end
$$;
