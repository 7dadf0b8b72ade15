"""Shared DDL and helpers for the REST tests (tables prefixed ``rest_``)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import psycopg

SCHEMA_SQL = """
drop table if exists public.rest_film_actors, public.rest_actors, public.rest_films, public.rest_books,
  public.rest_authors, public.rest_notes, public.rest_items, public.rest_kinds, public.rest_profiles cascade;
drop view if exists public.rest_book_view, public.rest_books_public;
drop function if exists public.rest_add(int, int), public.rest_add(int, int, int), public.rest_echo(json),
  public.rest_books_by(int), public.rest_hello(), public.rest_noop(), public.rest_words(text),
  public.rest_author_of(int), public.rest_touch(int), public.rest_raise(), public.rest_me(),
  public.rest_over(int), public.rest_over(text), public.rest_table_fn(int), public.rest_single(jsonb),
  public.rest_teapot();

create table public.rest_authors (
  id serial primary key,
  name text not null unique,
  country text
);
create table public.rest_books (
  id serial primary key,
  title text not null,
  author_id int references public.rest_authors(id),
  editor_id int references public.rest_authors(id),
  pages int,
  price numeric(10,2),
  tags text[] default '{}',
  meta jsonb default '{}'::jsonb,
  published date,
  span int4range,
  body tsvector,
  created_at timestamptz not null default now()
);
create table public.rest_films (id int primary key, title text not null);
create table public.rest_actors (id int primary key, name text not null);
create table public.rest_film_actors (
  film_id int references public.rest_films(id),
  actor_id int references public.rest_actors(id),
  primary key (film_id, actor_id)
);
create table public.rest_items (
  id bigserial primary key,
  name text not null,
  qty int not null default 1,
  note text default 'none',
  code uuid not null default gen_random_uuid() unique
);
create table public.rest_kinds (id int primary key, label text);
create table public.rest_notes (
  id bigserial primary key,
  owner uuid not null default auth.uid(),
  body text not null
);
alter table public.rest_notes enable row level security;
create policy rest_notes_select on public.rest_notes for select to authenticated using (owner = auth.uid());
create policy rest_notes_insert on public.rest_notes for insert to authenticated with check (owner = auth.uid());
create policy rest_notes_update on public.rest_notes for update to authenticated using (owner = auth.uid());
create policy rest_notes_delete on public.rest_notes for delete to authenticated using (owner = auth.uid());
revoke all on public.rest_notes from anon;

create view public.rest_book_view as select b.id, b.title, a.name as author from public.rest_books b
  join public.rest_authors a on a.id = b.author_id;

create view public.rest_books_public as select id, title, author_id as writer from public.rest_books;

create function public.rest_add(a int, b int) returns int language sql immutable as $$ select a + b $$;
create function public.rest_add(a int, b int, c int) returns int language sql immutable as $$ select a + b + c $$;
create function public.rest_echo(json) returns json language sql immutable as $$ select $1 $$;
create function public.rest_single(payload jsonb) returns jsonb language sql immutable as $$ select payload $$;
create function public.rest_books_by(author int) returns setof public.rest_books language sql stable as
  $$ select * from public.rest_books where author_id = author order by id $$;
create function public.rest_author_of(book int) returns public.rest_authors language sql stable as
  $$ select a.* from public.rest_authors a join public.rest_books b on b.author_id = a.id where b.id = book $$;
create function public.rest_hello() returns text language sql stable as $$ select 'hello' $$;
create function public.rest_noop() returns void language sql volatile as $$ select $$;
create function public.rest_words(prefix text default 'w') returns setof text language sql stable as
  $$ select prefix || g from generate_series(1, 3) g $$;
create function public.rest_touch(n int) returns int language sql volatile as
  $$ insert into public.rest_kinds values (n, 'touched') returning id $$;
create function public.rest_raise() returns int language plpgsql as
  $$ begin raise sqlstate 'PT402' using message = 'Payment required', detail = 'pay up', hint = 'card'; end $$;
create function public.rest_me() returns json language sql stable as
  $$ select json_build_object('role', current_user, 'sub', auth.uid(),
     'method', current_setting('request.method', true), 'path', current_setting('request.path', true),
     'apikey', current_setting('request.headers', true)::json->>'apikey' is not null) $$;
create function public.rest_over(x int) returns text language sql immutable as $$ select 'int' $$;
create function public.rest_over(y text) returns text language sql immutable as $$ select 'text' $$;
create function public.rest_teapot() returns json language plpgsql as $$
begin
  perform set_config('response.status', '418', true);
  perform set_config('response.headers', '[{"X-Brew": "tea"}, {"Cache-Control": "no-store"}]', true);
  return '{"short": "stout"}';
end $$;
create function public.rest_table_fn(lim int) returns table(n int, sq int) language sql immutable as
  $$ select g, g * g from generate_series(1, lim) g $$;

insert into public.rest_authors (name, country) values ('Ann', 'NO'), ('Bob', 'SE'), ('Cid', null);
insert into public.rest_books (title, author_id, editor_id, pages, price, tags, meta, published, span, body) values
  ('Alpha', 1, 2, 100, 9.99, '{a,b}', '{"lang":"en","n":1}', '2020-01-01', '[1,10)', to_tsvector('english', 'the quick brown fox')),
  ('Beta', 1, null, 200, 19.5, '{b}', '{"lang":"no","n":2}', '2021-06-01', '[5,20)', to_tsvector('english', 'lazy dogs sleep')),
  ('Gamma', 2, 1, null, null, '{}', '{"lang":"en","n":3}', null, null, to_tsvector('english', 'quick thinking')),
  ('Delta, the "quoted"', 3, null, 50, 5, '{c}', '{}', '2019-03-03', '[30,40)', null);
insert into public.rest_films values (1, 'Heat'), (2, 'Ronin');
insert into public.rest_actors values (1, 'De Niro'), (2, 'Pacino'), (3, 'Reno');
insert into public.rest_film_actors values (1, 1), (1, 2), (2, 1), (2, 3);
insert into public.rest_kinds values (1, 'one'), (2, 'two');
"""

TABLES = ["rest_authors", "rest_books", "rest_films", "rest_actors", "rest_film_actors", "rest_items",
          "rest_kinds", "rest_notes", "rest_book_view", "rest_books_public"]


def user_token(secret: str, sub: str, role: str = "authenticated", exp_in: int = 3600) -> str:
    return jwt.encode(
        {"sub": sub, "role": role, "aud": "authenticated", "exp": int(time.time()) + exp_in}, secret,
        algorithm="HS256",
    )


def wait_for_tables(base: str, key: str, tables: list[str], timeout: float = 20, db_url: str | None = None) -> None:
    """Poll until the REST schema cache serves every table. With ``db_url``, ``NOTIFY pgrst`` is
    sent again every second while waiting: a notification sent while the schema listener was
    reconnecting (other tests terminate the stack's backends) is lost, as with PostgREST."""
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout
    pending = list(tables)
    notified = time.monotonic()
    while pending and time.monotonic() < deadline:
        # a generous per-request timeout: right after connection-heavy tests the stack's pools may
        # still be reconnecting
        r = httpx.get(f"{base}/{pending[0]}", params={"limit": "0"}, headers=headers, timeout=60)
        if r.status_code == 200:
            pending.pop(0)
            continue
        if db_url is not None and time.monotonic() - notified > 1:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("notify pgrst, 'reload schema'")
            notified = time.monotonic()
        time.sleep(0.05)
    if pending:
        raise RuntimeError(f"schema cache never showed {pending}")


def client_headers(key: str, token: str | None = None) -> dict[str, Any]:
    return {"apikey": key, "Authorization": f"Bearer {token or key}"}
