"""Rate limits: appkit.rate_limit in SQL, app.ratelimit in the SDK, `appkit ratelimit` in the CLI."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from examples import ratelimit_posts

from appkit import AppKit, errors
from tests.sdk_support import make_app, make_async_app
from tests.support import StackHandle, run_cli
from tests.svc_support import Caller, Probe, anon, assert_matrix, service, sign_up, sql


def key() -> str:
    return f"test:{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = make_app(stack)
    yield client
    client.close()


def test_bucket_grants_refills_and_says_when_to_retry(app: AppKit) -> None:
    k = key()
    rl = app.admin.ratelimit
    got = [rl.consume(k, capacity=3, refill_per_second=0.5) for _ in range(4)]
    assert [r.allowed for r in got] == [True, True, True, False]
    assert [r.remaining for r in got] == [2, 1, 0, 0]
    assert got[0].retry_after == 0
    assert got[3].retry_after is not None and 1.5 < got[3].retry_after <= 2.0
    peek = rl.check(k, capacity=3, refill_per_second=0.5)
    assert not peek.allowed and peek.remaining == 0
    # check never takes anything; cost is per call
    assert rl.check(k, capacity=3, refill_per_second=0.5, cost=0).allowed
    time.sleep(2.1)
    assert rl.consume(k, capacity=3, refill_per_second=0.5).allowed


def test_no_refill_bucket_has_no_retry_after(app: AppKit) -> None:
    k = key()
    assert app.admin.ratelimit.consume(k, capacity=2, refill_per_second=0, cost=2).allowed
    denied = app.admin.ratelimit.consume(k, capacity=2, refill_per_second=0)
    assert not denied.allowed and denied.retry_after is None


def test_other_numbers_are_another_bucket_and_reset_forgets_all(app: AppKit) -> None:
    k = key()
    rl = app.admin.ratelimit
    assert rl.consume(k, capacity=1, refill_per_second=0).allowed
    assert not rl.consume(k, capacity=1, refill_per_second=0).allowed
    assert rl.consume(k, capacity=1000, refill_per_second=1000).allowed  # cannot refill the first
    assert not rl.consume(k, capacity=1, refill_per_second=0).allowed
    assert rl.reset(k) == 2
    assert rl.consume(k, capacity=1, refill_per_second=0).allowed
    assert rl.reset(key()) == 0


def test_fifty_concurrent_consumers_get_exactly_the_capacity(stack: StackHandle) -> None:
    """50 connections race 4 calls each at a 100-token bucket: exactly 100 grants."""
    k = key()
    barrier = threading.Barrier(50)
    grants: list[int] = []
    lock = threading.Lock()

    def consumer() -> None:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            barrier.wait()
            mine = 0
            for _ in range(4):
                row = conn.execute("select allowed from appkit.rate_limit(%s, 100, 0)", (k,)).fetchone()
                mine += bool(row and row[0])
            with lock:
                grants.append(mine)

    threads = [threading.Thread(target=consumer) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(grants) == 50
    assert sum(grants) == 100
    assert sql(stack, "select tokens from appkit.rate_limits where key = %s", (k,)) == [(0.0,)]


async def test_fifty_concurrent_sdk_consumers_get_exactly_the_capacity(stack: StackHandle) -> None:
    k = key()
    async with make_async_app(stack) as app:
        rl = app.admin.ratelimit
        results = await asyncio.gather(*[rl.consume(k, capacity=100, refill_per_second=0)
                                         for _ in range(150)])
    assert sum(r.allowed for r in results) == 100
    assert sorted(r.remaining for r in results if r.allowed) == list(range(100))


def test_user_keys_are_scoped_to_the_user(stack: StackHandle, app: AppKit) -> None:
    alice, bob = sign_up(stack, "rl-alice"), sign_up(stack, "rl-bob")
    a = app.as_user(alice.token).ratelimit
    b = app.as_user(bob.token).ratelimit
    assert a.consume("posts", capacity=1, refill_per_second=0).allowed
    assert not a.consume("posts", capacity=1, refill_per_second=0).allowed
    assert b.consume("posts", capacity=1, refill_per_second=0).allowed  # bob's own bucket
    # bob naming alice's stored key gets a bucket under his own prefix
    stored = f"user:{alice.user_id}:victim"
    for _ in range(3):
        b.consume(stored, capacity=3, refill_per_second=0)
    assert app.admin.ratelimit.check(stored, capacity=3, refill_per_second=0).remaining == 3
    keys = {r[0] for r in sql(stack, "select key from appkit.rate_limits where key like %s or key like %s",
                               (f"user:{alice.user_id}:%", f"user:{bob.user_id}:%"))}
    assert keys == {f"user:{alice.user_id}:posts", f"user:{bob.user_id}:posts",
                    f"user:{bob.user_id}:user:{alice.user_id}:victim"}
    # the service role reaches a user's bucket by its stored key
    assert not app.admin.ratelimit.check(f"user:{alice.user_id}:posts", capacity=1, refill_per_second=0).allowed
    anon_result = app.ratelimit.consume("signup", capacity=5, refill_per_second=0)
    assert anon_result.allowed
    assert sql(stack, "select count(*) from appkit.rate_limits where key = 'anon:signup'") == [(1,)]


def test_policy_example_limits_posts_per_user(stack: StackHandle) -> None:
    """The docs' example (examples/ratelimit_posts.py) as a program a user runs."""
    import os
    import subprocess
    import sys

    from tests.support import REPO

    env = {**os.environ, "SUPABASE_URL": stack.api_url, "SUPABASE_ANON_KEY": stack.anon_key,
           "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key, "SUPABASE_DB_URL": stack.db_url}
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "ratelimit_posts.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "posts 1-10 accepted" in proc.stdout
    assert "post 11 refused: PermissionDenied" in proc.stdout
    assert "another user can still post" in proc.stdout
    assert "login attempts: 5 allowed, then retry after" in proc.stdout
    doc = (REPO / "docs" / "ratelimit.md").read_text()
    assert ratelimit_posts.POLICY_SQL.strip() in doc  # the page shows the SQL the program runs


BAD_BUCKETS: list[tuple[Any, Any, Any, Any]] = [
    ("", 1, 1, 1), ("x" * 401, 1, 1, 1), (None, 1, 1, 1), (5, 1, 1, 1), ("a\x00b", 1, 1, 1),
    ("k", 0, 1, 1), ("k", -1, 1, 1), ("k", 1.5, 1, 1), ("k", True, 1, 1), ("k", "10", 1, 1), ("k", 2**31, 1, 1),
    ("k", 1, -1, 1), ("k", 1, math.inf, 1), ("k", 1, math.nan, 1), ("k", 1, "1", 1), ("k", 1, None, 1),
    ("k", 1, 1, -1), ("k", 1, 1, 2), ("k", 1, 1, 0.5), ("k", 1, 1, None),
]


@pytest.mark.parametrize(("k", "capacity", "refill", "cost"), BAD_BUCKETS)
def test_bad_input_is_a_validation_error(app: AppKit, k: Any, capacity: Any, refill: Any, cost: Any) -> None:
    for method in (app.admin.ratelimit.consume, app.admin.ratelimit.check):
        with pytest.raises(errors.ValidationError):
            method(k, capacity=capacity, refill_per_second=refill, cost=cost)


@pytest.mark.parametrize("bad", ["", None, 7, "x" * 401])
def test_reset_bad_key(app: AppKit, bad: Any) -> None:
    with pytest.raises(errors.ValidationError):
        app.admin.ratelimit.reset(bad)


@pytest.mark.parametrize(("body", "code"), [
    ({"key": "k", "capacity": 0, "refill_per_second": 1}, "22023"),
    ({"key": "k", "capacity": 5, "refill_per_second": -1}, "22023"),
    ({"key": "k", "capacity": 5, "refill_per_second": 1, "cost": 6}, "22023"),
    ({"key": "", "capacity": 5, "refill_per_second": 1}, "22023"),
])
def test_sql_validates_too(stack: StackHandle, body: dict[str, Any], code: str) -> None:
    """The SQL rejects what the SDK would have (a raw client gets a 400 with the SQLSTATE)."""
    r = service(stack).rpc("rate_limit", body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code


def test_reset_and_purge_are_service_role_only(stack: StackHandle, app: AppKit) -> None:
    with pytest.raises(errors.PermissionDenied):
        app.ratelimit.reset("anything")
    k = key()
    app.admin.ratelimit.consume(k, capacity=2, refill_per_second=1000)
    time.sleep(0.05)
    r = service(stack).rpc("rate_limit_purge")
    assert r.status_code == 200 and r.json() >= 1
    assert sql(stack, "select count(*) from appkit.rate_limits where key = %s", (k,)) == [(0,)]


def _rows_visible(caller: Caller, k: str) -> bool:
    r = caller.get("rate_limits", params={"key": f"eq.{k}"})
    return r.status_code == 200 and len(r.json()) > 0


def _insert(caller: Caller) -> bool:
    r = caller.post("rate_limits", {"key": key(), "capacity": 1, "refill_per_second": 0, "tokens": 1000})
    return r.status_code == 201


def _update(stack: StackHandle, caller: Caller, k: str) -> bool:
    caller.patch("rate_limits", {"tokens": 1000}, params={"key": f"eq.{k}"})
    return sql(stack, "select tokens from appkit.rate_limits where key = %s", (k,)) == [(1000.0,)]


def _delete(stack: StackHandle, caller: Caller, k: str) -> bool:
    caller.delete("rate_limits", params={"key": f"eq.{k}"})
    return sql(stack, "select count(*) from appkit.rate_limits where key = %s", (k,)) == [(0,)]


def _fresh_bucket(stack: StackHandle) -> str:
    k = key()
    sql(stack, "insert into appkit.rate_limits (key, capacity, refill_per_second, tokens) values (%s, 5, 0, 1)", (k,))
    return k


def test_rls_matrix(stack: StackHandle) -> None:
    user = sign_up(stack, "rl-matrix")
    callers = {"anon": anon(stack), "authenticated": user, "service_role": service(stack)}
    probes: list[Probe] = []
    for name, c in callers.items():
        is_service = name == "service_role"
        probes += [
            Probe("appkit.rate_limits", "select", name, is_service,
                  lambda c=c: _rows_visible(c, _fresh_bucket(stack))),
            Probe("appkit.rate_limits", "insert", name, False, lambda c=c: _insert(c)),
            Probe("appkit.rate_limits", "update", name, False, lambda c=c: _update(stack, c, _fresh_bucket(stack))),
            Probe("appkit.rate_limits", "delete", name, is_service,
                  lambda c=c: _delete(stack, c, _fresh_bucket(stack))),
            Probe("rpc appkit.rate_limit", "execute", name, True,
                  lambda c=c: c.rpc("rate_limit", {"key": key(), "capacity": 1, "refill_per_second": 0})
                  .status_code == 200),
            Probe("rpc appkit.rate_limit_check", "execute", name, True,
                  lambda c=c: c.rpc("rate_limit_check", {"key": key(), "capacity": 1, "refill_per_second": 0})
                  .status_code == 200),
            Probe("rpc appkit.rate_limit_reset", "execute", name, is_service,
                  lambda c=c: _delete_via_reset(stack, c)),
            Probe("rpc appkit.rate_limit_purge", "execute", name, is_service,
                  lambda c=c: c.rpc("rate_limit_purge").status_code == 200),
            Probe("rpc appkit.rate_limit_key", "execute", name, is_service,
                  lambda c=c: c.rpc("rate_limit_key", {"key": "k"}).status_code == 200),
            Probe("rpc appkit._rate_limit_check_args", "execute", name, is_service,
                  lambda c=c: c.rpc("_rate_limit_check_args", {"capacity": 1, "refill_per_second": 0, "cost": 1})
                  .status_code == 200),
        ]
    assert_matrix(probes)


def _delete_via_reset(stack: StackHandle, caller: Caller) -> bool:
    k = _fresh_bucket(stack)
    caller.rpc("rate_limit_reset", {"key": k})
    return sql(stack, "select count(*) from appkit.rate_limits where key = %s", (k,)) == [(0,)]


def test_cli_show_and_reset(stack: StackHandle, app: AppKit) -> None:
    k = key()
    app.admin.ratelimit.consume(k, capacity=10, refill_per_second=0, cost=4)
    shown = run_cli("ratelimit", "show", k, "-o", "json", "--db-url", stack.db_url)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r["key"], r["capacity"], r["level"]) for r in rows] == [(k, 10, 6.0)]
    table = run_cli("ratelimit", "show", k, "--db-url", stack.db_url)
    assert table.returncode == 0 and k in table.stdout and "6.00/10" in table.stdout
    done = run_cli("ratelimit", "reset", k, "--db-url", stack.db_url)
    assert done.returncode == 0 and "Reset 1 bucket." in done.stdout
    empty = run_cli("ratelimit", "show", k, "--db-url", stack.db_url)
    assert "No rate-limit buckets." in empty.stdout
    app.admin.ratelimit.consume(f"{k}:a", capacity=1, refill_per_second=0)
    app.admin.ratelimit.consume(f"{k}:b", capacity=1, refill_per_second=0)
    by_prefix = run_cli("ratelimit", "reset", "--prefix", f"{k}:", "--db-url", stack.db_url)
    assert by_prefix.returncode == 0 and "Reset 2 buckets." in by_prefix.stdout


@pytest.mark.parametrize("args", [
    ["ratelimit", "show", "--limit", "0"],
    ["ratelimit", "show", "--limit", "abc"],
    ["ratelimit", "show", "-o", "yaml"],
    ["ratelimit", "show", "a\x01" * 300],
    ["ratelimit", "reset"],
    ["ratelimit", "reset", "k", "--prefix", "p"],
    ["ratelimit", "reset", "--prefix", ""],
    ["ratelimit", "reset", "x" * 401],
])
def test_cli_bad_input(stack: StackHandle, args: list[str]) -> None:
    proc = run_cli(*args, "--db-url", stack.db_url)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip(), proc.stdout


def test_cli_unreachable_database_is_one_line(tmp_path: Any) -> None:
    proc = run_cli("ratelimit", "show", "--db-url", "postgresql://postgres:x@127.0.0.1:1/postgres")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    no_stack = run_cli("ratelimit", "show", "--workdir", str(tmp_path), env={"SUPABASE_DB_URL": ""})
    assert no_stack.returncode == 1 and "not running" in no_stack.stderr
