-- appkit's schema: the home of appkit's tables, views and functions, exposed to the API like
-- any other schema (add "appkit" to [api] schemas), so it never collides with a project's own
-- public.profiles or public.organizations.
create schema if not exists appkit;
comment on schema appkit is 'appkit domain services (organizations, jobs, notifications, audit, rate limits)';
grant usage on schema appkit to anon, authenticated, service_role;
