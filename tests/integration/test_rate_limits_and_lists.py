"""Over HTTP: auth's 429 answers carry Retry-After; REST's in.("null") is the string."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest

from tests.support import StackHandle

pytestmark = pytest.mark.integration


async def test_a_rate_limited_auth_request_says_when_to_retry(stack: StackHandle) -> None:
    email = f"rl-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"apikey": stack.anon_key}, timeout=30) as http:
        # max_frequency (1 s) allows one e-mail per address at a time: concurrent asks trip it
        answers = await asyncio.gather(*(http.post("/auth/v1/otp", json={"email": email}) for _ in range(6)))
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    for r in limited:
        assert r.json()["error_code"] == "over_email_send_rate_limit"
        assert r.headers["retry-after"].isdigit() and 1 <= int(r.headers["retry-after"]) <= 60


def test_in_with_a_quoted_null_matches_the_string(stack: StackHandle,
                                                  db: psycopg.Connection[tuple[object, ...]]) -> None:
    table = f"nulls_{uuid.uuid4().hex[:8]}"
    db.execute(f"create table public.{table} (id int primary key, v text)")
    db.execute(f"insert into public.{table} values (1, 'null'), (2, null), (3, 'x')")
    db.execute(f"grant select on public.{table} to anon")
    db.execute("notify pgrst, 'reload schema'")
    try:
        url = f"{stack.api_url}/rest/v1/{table}"
        h = {"apikey": stack.anon_key}
        for _ in range(100):
            r = httpx.get(url, params={"v": 'in.("null")', "order": "id"}, headers=h)
            if r.status_code != 404:
                break
        assert r.status_code == 200 and r.json() == [{"id": 1, "v": "null"}], r.text
        r = httpx.get(url, params={"v": 'in.("null",x)', "order": "id"}, headers=h)
        assert [row["id"] for row in r.json()] == [1, 3]
        r = httpx.get(url, params={"v": "in.(null,x)", "order": "id"}, headers=h)
        assert [row["id"] for row in r.json()] == [3], "an unquoted null is SQL NULL, which = ANY never matches"
    finally:
        db.execute(f"drop table public.{table}")
