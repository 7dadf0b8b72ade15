"""PostgREST's in-database configuration (pgrst.* on the authenticator role, reloaded on
NOTIFY pgrst, 'reload config') and the aggregates it switches on, through the official client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from tests.rest_support import wait_for_tables
from tests.support import StackHandle

SETUP = """
drop table if exists public.rest_cfg_sales;
create table public.rest_cfg_sales (id serial primary key, category text not null, amount numeric not null);
alter table public.rest_cfg_sales enable row level security;
create policy "anyone reads" on public.rest_cfg_sales for select using (true);
insert into public.rest_cfg_sales (category, amount) values
  ('books', 10), ('books', 20), ('games', 5), ('games', 7.5), ('games', 2.5), ('toys', 1);
notify pgrst, 'reload schema';
"""


def set_config(stack: StackHandle, **settings: str | None) -> None:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for name, value in settings.items():
            if value is None:
                conn.execute(f"alter role authenticator reset pgrst.{name}")
            else:
                conn.execute(f"alter role authenticator set pgrst.{name} = '{value}'")
        conn.execute("notify pgrst, 'reload config'")


def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, APIError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def rest(stack: StackHandle) -> Iterator[SyncPostgrestClient]:
    if stack.workdir is None:
        pytest.skip("changes the shared project's authenticator settings")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(SETUP)
    wait_for_tables(stack.api_url + "/rest/v1", stack.service_role_key, ["rest_cfg_sales"])
    client = SyncPostgrestClient(stack.api_url + "/rest/v1",
                                 headers={"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"})
    try:
        yield client
    finally:
        set_config(stack, db_aggregates_enabled=None, db_max_rows=None, db_plan_enabled=None)
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("drop table public.rest_cfg_sales; notify pgrst, 'reload schema'")


def test_aggregates_are_refused_until_switched_on(stack: StackHandle, rest: SyncPostgrestClient) -> None:
    set_config(stack, db_aggregates_enabled=None)

    def refused() -> None:
        try:
            rest.from_("rest_cfg_sales").select("amount.sum()").execute()
        except APIError as err:
            assert (err.code, err.message) == ("PGRST123", "Use of aggregate functions is not allowed")
            return
        raise AssertionError("the aggregate was answered")
    eventually(refused)

    set_config(stack, db_aggregates_enabled="true")

    def grouped() -> list[dict[str, Any]]:
        rows = rest.from_("rest_cfg_sales").select("category, amount.sum(), count()").order("category").execute()
        return rows.data
    assert eventually(grouped) == [
        {"category": "books", "sum": 30, "count": 2},
        {"category": "games", "sum": 15.0, "count": 3},
        {"category": "toys", "sum": 1, "count": 1},
    ]
    total = rest.from_("rest_cfg_sales").select("total:amount.sum(), n:count(), amount.avg()::int, "
                                                 "amount.max(), amount.min()").execute().data
    assert total == [{"total": 46.0, "n": 6, "avg": 8, "max": 20, "min": 1}]
    filtered = rest.from_("rest_cfg_sales").select("amount.sum()").eq("category", "games").execute().data
    assert filtered == [{"sum": 15.0}]
    with pytest.raises(APIError) as bad:  # an unknown column in an aggregate
        rest.from_("rest_cfg_sales").select("nope.sum()").execute()
    assert bad.value.code == "42703"

    set_config(stack, db_aggregates_enabled="off")  # and off again on the next reload
    eventually(refused)


def test_db_max_rows_overrides_the_config_file(stack: StackHandle, rest: SyncPostgrestClient) -> None:
    set_config(stack, db_max_rows="2")

    def capped() -> None:
        assert len(rest.from_("rest_cfg_sales").select("id").execute().data) == 2
    eventually(capped)
    r = httpx.get(f"{stack.api_url}/rest/v1/rest_cfg_sales", params={"select": "id"},
                  headers={"apikey": stack.anon_key, "Prefer": "count=exact"})
    assert r.headers["content-range"] == "0-1/6"
    set_config(stack, db_max_rows=None)

    def uncapped() -> None:
        assert len(rest.from_("rest_cfg_sales").select("id").execute().data) == 6
    eventually(uncapped)


def test_explain_plans_when_db_plan_enabled(stack: StackHandle, rest: SyncPostgrestClient) -> None:
    url = f"{stack.api_url}/rest/v1/rest_cfg_sales"
    headers = {"apikey": stack.anon_key}
    set_config(stack, db_plan_enabled=None)

    def unavailable() -> None:
        r = httpx.get(url, headers={**headers, "Accept": "application/vnd.pgrst.plan+json"})
        assert (r.status_code, r.json()["code"]) == (406, "PGRST107")
    eventually(unavailable)

    set_config(stack, db_plan_enabled="true")

    def text_plan() -> str:
        plan = rest.from_("rest_cfg_sales").select("id").eq("category", "books").explain().execute()
        assert isinstance(plan, str) and "Scan" in plan  # not a str while the old config still answers
        return plan
    eventually(text_plan)
    r = httpx.get(url, params={"select": "id", "category": "eq.books"},
                  headers={**headers, "Accept": "application/vnd.pgrst.plan+json; options=analyze|verbose"})
    assert r.status_code == 200
    assert r.headers["content-type"] == ('application/vnd.pgrst.plan+json; for="application/json";'
                                         " options=analyze|verbose; charset=utf-8")
    plan = r.json()
    assert isinstance(plan, list) and "Plan" in plan[0] and "Actual Total Time" in plan[0]["Plan"]
    # the plan runs as the caller: an unknown column is still the caller's error
    bad = httpx.get(url, params={"select": "nope"}, headers={**headers, "Accept": "application/vnd.pgrst.plan"})
    assert (bad.status_code, bad.json()["code"]) == (400, "42703")
    set_config(stack, db_plan_enabled=None)
    eventually(unavailable)
