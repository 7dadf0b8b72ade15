-- Tables, views and functions of every kind `appkit gen models` types (tests/integration/test_gen_models.py).
create type public.gen_mood as enum ('happy', 'sad', 'it''s "complicated"');
create domain public.gen_email as text check (value like '%@%');
create domain public.gen_positive as numeric(12, 2) not null check (value > 0);

create table public.gen_items (
  id bigint generated always as identity primary key,
  sku uuid not null default gen_random_uuid(),
  title text not null,
  mood public.gen_mood not null default 'happy',
  moods public.gen_mood[] not null default '{}',
  tags text[],
  price public.gen_positive,
  contact public.gen_email,
  attrs jsonb not null default '{}',
  raw json,
  weight double precision,
  qty int2 not null default 1,
  big int8,
  done boolean not null default false,
  born date,
  at_time time,
  created_at timestamptz not null default now(),
  local_at timestamp,
  span interval,
  blob bytea,
  addr inet,
  title_len int generated always as (length(title)) stored,
  "class" text,
  "Weird Name" text,
  model_name text
);
comment on table public.gen_items is 'Items with "every" type.';
comment on column public.gen_items.title is 'What people see';

create table public.gen_tags (
  code text primary key,
  item_id bigint references public.gen_items (id) on delete cascade,
  note text
);

create table public.gen_pairs (a int not null, b int not null, primary key (a, b));

create view public.gen_item_titles as select id, title, mood from public.gen_items;

create function public.gen_add(a int, b int default 1) returns int language sql immutable as 'select a + b';
create function public.gen_items_by_mood(m public.gen_mood) returns setof public.gen_items
  language sql stable as 'select * from public.gen_items where mood = m order by id';
create function public.gen_stats() returns table (n bigint, top text)
  language sql stable as 'select count(*), max(title) from public.gen_items';
create function public.gen_touch(item bigint) returns void language sql as 'select';
create function public.gen_echo(payload jsonb) returns jsonb language sql immutable as 'select payload';
create function public.gen_ids(variadic ids int[]) returns int[] language sql immutable as 'select ids';
create function public.gen_over(x int) returns int language sql immutable as 'select x';
create function public.gen_over(x text) returns text language sql immutable as 'select x';
create function public.gen_trigger() returns trigger language plpgsql as 'begin return new; end';

grant select, insert, update, delete on public.gen_items, public.gen_tags, public.gen_pairs to anon, authenticated, service_role;
grant select on public.gen_item_titles to anon, authenticated, service_role;
