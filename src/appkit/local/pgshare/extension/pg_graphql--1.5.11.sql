-- appkit stand-in for pg_graphql: the schema and entry point Supabase projects reference
-- (grants on schema graphql, `comment on schema ... '@graphql(...)'`, graphql.resolve).
-- There is no GraphQL engine in the local stack: resolve() answers every query with a
-- GraphQL error response, the shape pg_graphql uses for errors.
create function graphql.resolve(query text, variables jsonb default '{}', "operationName" text default null,
                                extensions jsonb default null)
returns jsonb language sql stable as $$
  select jsonb_build_object('data', null, 'errors', jsonb_build_array(jsonb_build_object(
    'message', 'pg_graphql is not available in the appkit local stack; use the REST API (/rest/v1)')))
$$;
grant usage on schema graphql to public;
grant execute on function graphql.resolve(text, jsonb, text, jsonb) to public;
