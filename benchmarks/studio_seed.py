"""Seeds a local stack for the studio benchmark: a 100,000-row RLS table, 10,000 users, 100,000 jobs, orgs, files.

Used by ``benchmarks/bench_studio.py``. Users go in through ``appkit.users.bulk.import_users``
(the path ``appkit users import`` takes); the rest is set-based SQL as the service's own
migrations would write it, so seeding 100,000 rows takes seconds, not minutes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import bcrypt
import psycopg

PASSWORD = "studio-bench-password-1"

TABLE_SQL = """
create table if not exists public.bench_items (
    id bigint generated always as identity primary key,
    owner uuid not null references auth.users (id) on delete cascade,
    title text not null,
    amount numeric(12, 2),
    done boolean not null default false,
    tags text[] not null default '{}',
    meta jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
create index if not exists bench_items_owner on public.bench_items (owner);
create index if not exists bench_items_created_at on public.bench_items (created_at);
alter table public.bench_items enable row level security;
drop policy if exists bench_items_own on public.bench_items;
create policy bench_items_own on public.bench_items for all to authenticated
    using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
grant select, insert, update, delete on public.bench_items to authenticated, service_role;
"""


@dataclass(frozen=True)
class Seeded:
    user_ids: list[str]
    table_rows: int
    jobs: int
    orgs: int
    files: int


def seed(db_url: str, *, rows: int = 100_000, users: int = 10_000, jobs: int = 100_000, orgs: int = 200,
         tag: str | None = None) -> Seeded:
    """Fill the database behind ``db_url`` (a superuser URL); ``tag`` keeps e-mails unique across calls."""
    from appkit.users.bulk import import_users
    from appkit.users.records import UserRecord

    tag = tag or uuid.uuid4().hex[:8]
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    records = [UserRecord(id=str(uuid.uuid4()), email=f"bench-{tag}-{i:05d}@example.com", password_hash=hashed,
                          email_confirmed_at="2026-01-01T00:00:00+00:00", user_metadata={"i": i},
                          app_metadata={"provider": "email", "providers": ["email"]})
               for i in range(users)]
    import_users(db_url, records)
    ids = [r.id for r in records]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(TABLE_SQL)
        conn.execute(
            """
            insert into public.bench_items (owner, title, amount, done, tags, meta, created_at)
            select u.ids[1 + (g %% array_length(u.ids, 1))], 'item ' || g, (g %% 10000) / 100.0, g %% 3 = 0,
                   array['t' || (g %% 7)], jsonb_build_object('n', g), now() - make_interval(secs => g)
            from generate_series(1, %(rows)s) g, (select %(ids)s::uuid[] as ids) u
            """,
            {"rows": rows, "ids": ids},
        )
        conn.execute(
            """
            insert into appkit.jobs (queue, payload, status, priority, run_at, attempts, max_attempts, last_error,
                                     created_at, started_at, finished_at)
            select (array['email', 'reports', 'thumbnails', 'webhooks'])[1 + g %% 4],
                   jsonb_build_object('n', g),
                   s.status, (g %% 5)::smallint, now() - make_interval(secs => g),
                   case when s.status in ('succeeded', 'dead', 'failed') then 1 + g %% 3 else 0 end, 3,
                   case when s.status in ('dead', 'failed') then 'boom ' || g end,
                   now() - make_interval(secs => g),
                   case when s.status in ('succeeded', 'dead', 'failed') then now() - make_interval(secs => g) end,
                   case when s.status in ('succeeded', 'dead', 'cancelled') then now() - make_interval(secs => g) end
            from generate_series(1, %(jobs)s) g,
                 lateral (select (array['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
                                        'dead', 'failed', 'cancelled', 'queued'])[1 + g %% 10] as status) s
            """,
            {"jobs": jobs},
        )
        with conn.transaction():  # an organization needs its owner in the same transaction
            conn.execute(
                """
                insert into appkit.organizations (name, slug, created_by)
                select 'Org ' || g, 'bench-' || %(tag)s || '-' || g, u.ids[g]
                from generate_series(1, %(orgs)s) g, (select %(ids)s::uuid[] as ids) u
                """,
                {"orgs": orgs, "tag": tag, "ids": ids},
            )
            conn.execute(
                """
                insert into appkit.memberships (org_id, user_id, role)
                select o.id, u.ids[1 + ((o.n * 5 + k) %% array_length(u.ids, 1))],
                       case k when 0 then 'owner' when 1 then 'admin' else 'member' end
                from (select id, row_number() over (order by created_at, id) as n from appkit.organizations
                      where slug like 'bench-' || %(tag)s || '-%%') o,
                     generate_series(0, 4) k, (select %(ids)s::uuid[] as ids) u
                on conflict do nothing
                """,
                {"tag": tag, "ids": ids},
            )
        conn.execute(
            """
            insert into appkit.notifications (user_id, title, body)
            select u.ids[1 + g %% array_length(u.ids, 1)], 'Welcome ' || g, 'seeded'
            from generate_series(1, 2000) g, (select %(ids)s::uuid[] as ids) u
            """,
            {"ids": ids},
        )
        conn.execute("analyze")
    return Seeded(user_ids=ids, table_rows=rows, jobs=jobs, orgs=orgs, files=0)
