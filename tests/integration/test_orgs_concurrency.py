"""The organizations invariants under real concurrent transactions: two owners demoting each
other at once never leave an organization ownerless; one invitation accepted twice at once is
used once. Each race is run twice: forced (one transaction holds its locks while the other
starts) and free (threads released together over HTTP, many rounds)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from postgrest.exceptions import APIError

from tests.orgs_support import BuiltOrg, OrgWorld, TestUser, build_org, make_user, one, wait_for_appkit_schema
from tests.support import StackHandle

ROUNDS = 12


@pytest.fixture(scope="module")
def users(stack: StackHandle) -> Iterator[dict[str, TestUser]]:
    wait_for_appkit_schema(stack)
    yield {name: make_user(stack) for name in ("a", "b", "c", "d")}


def as_user(conn: psycopg.Connection[tuple[Any, ...]], user_id: str) -> None:
    """In the current transaction, act like PostgREST does for this user's request."""
    conn.execute("set local role authenticated")
    conn.execute("select set_config('request.jwt.claims', %s, true)",
                 (json.dumps({"sub": user_id, "role": "authenticated"}),))


def owners(db_url: str, org_id: str) -> int:
    with psycopg.connect(db_url) as conn:
        return int(one(conn, "select count(*) from appkit.memberships where org_id = %s and role = 'owner'",
                       (org_id,)))


def forced_race(db_url: str, first: Callable[[psycopg.Connection[Any]], None],
                second: Callable[[psycopg.Connection[Any]], None]) -> list[BaseException | None]:
    """``first`` runs in a transaction left open; ``second`` starts in another thread (it blocks
    on first's locks); first commits; second finishes. Returns each one's error (or None)."""
    results: list[BaseException | None] = [None, None]
    c1 = psycopg.connect(db_url)
    c2 = psycopg.connect(db_url)
    try:
        try:
            first(c1)
        except psycopg.Error as exc:
            results[0] = exc
            c1.rollback()

        def run_second() -> None:
            try:
                second(c2)
                c2.commit()
            except psycopg.Error as exc:
                results[1] = exc
                c2.rollback()

        t = threading.Thread(target=run_second)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the second transaction should wait for the first one's lock"
        c1.commit()
        t.join(30)
        assert not t.is_alive()
    finally:
        c1.close()
        c2.close()
    return results


def test_mutual_demotion_forced(stack: StackHandle, users: dict[str, TestUser]) -> None:
    a, b = users["a"], users["b"]
    org = build_org(stack.db_url, {"owner": a.id})
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, 'owner')", (org.id, b.id))

    def demote(actor: TestUser, target: TestUser) -> Callable[[psycopg.Connection[Any]], None]:
        def run(conn: psycopg.Connection[Any]) -> None:
            as_user(conn, actor.id)
            conn.execute("select appkit.set_member_role(%s, %s, 'admin')", (org.id, target.id))
        return run

    errors = forced_race(stack.db_url, demote(a, b), demote(b, a))
    assert errors[0] is None
    assert isinstance(errors[1], psycopg.errors.ObjectNotInPrerequisiteState | psycopg.errors.InsufficientPrivilege)
    assert owners(stack.db_url, org.id) == 1


def test_mutual_self_demotion_by_direct_writes(stack: StackHandle, users: dict[str, TestUser]) -> None:
    """The service role writing the table directly (no RPC) is held by the same trigger."""
    a, b = users["a"], users["b"]
    org = build_org(stack.db_url, {"owner": a.id})
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, 'owner')", (org.id, b.id))

    def demote(target: TestUser) -> Callable[[psycopg.Connection[Any]], None]:
        def run(conn: psycopg.Connection[Any]) -> None:
            conn.execute("set local role service_role")
            conn.execute("update appkit.memberships set role = 'member' where org_id = %s and user_id = %s",
                         (org.id, target.id))
        return run

    errors = forced_race(stack.db_url, demote(a), demote(b))
    assert errors[0] is None and isinstance(errors[1], psycopg.errors.ObjectNotInPrerequisiteState)
    assert owners(stack.db_url, org.id) == 1

    # deleting a user removes their memberships under the same rule
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        last_owner = one(conn, "select user_id::text from appkit.memberships where org_id = %s and role = 'owner'",
                         (org.id,))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute("delete from auth.users where id = %s", (last_owner,))
        assert owners(stack.db_url, org.id) == 1


def test_mutual_demotion_over_http(stack: StackHandle, users: dict[str, TestUser]) -> None:
    world = OrgWorld(stack, {"a": users["a"], "b": users["b"]})
    apis = {k: world.client(k).schema("appkit") for k in ("a", "b")}
    outcomes = []
    for _ in range(ROUNDS):
        org = build_org(stack.db_url, {"owner": users["a"].id})
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("insert into appkit.memberships (org_id, user_id, role) values (%s, %s, 'owner')",
                         (org.id, users["b"].id))
        barrier = threading.Barrier(2)

        def demote(actor: str, target: str, org: BuiltOrg = org, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                apis[actor].rpc("set_member_role", {"org_id": org.id, "user_id": users[target].id,
                                                    "role": "member"}).execute()
                return "ok"
            except APIError as exc:
                return str(exc.code)

        with ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(lambda p: demote(*p), [("a", "b"), ("b", "a")]))
        outcomes.append(results)
        assert owners(stack.db_url, org.id) == 1, results
        assert results.count("ok") == 1, results
    assert all(r[0] in ("42501", "55000") for r in outcomes)


def test_one_invitation_accepted_twice_at_once(stack: StackHandle, users: dict[str, TestUser]) -> None:
    org = build_org(stack.db_url, {"owner": users["a"].id})

    def accept(user: TestUser) -> Callable[[psycopg.Connection[Any]], None]:
        def run(conn: psycopg.Connection[Any]) -> None:
            as_user(conn, user.id)
            conn.execute("select appkit.accept_invitation(%s)", (org.invitation_token,))
        return run

    errors = forced_race(stack.db_url, accept(users["c"]), accept(users["d"]))
    assert errors[0] is None and isinstance(errors[1], psycopg.errors.ObjectNotInPrerequisiteState)
    assert "already used" in str(errors[1])
    with psycopg.connect(stack.db_url) as conn:
        members = conn.execute("select user_id::text from appkit.memberships where org_id = %s and role = 'viewer'",
                               (org.id,)).fetchall()
        assert members == [(users["c"].id,)]
        assert one(conn, "select accepted_by::text from appkit.invitations where id = %s",
                   (org.invitation_id,)) == users["c"].id


def test_invitation_race_over_http(stack: StackHandle) -> None:
    owner = make_user(stack)
    takers = [make_user(stack) for _ in range(4)]
    world = OrgWorld(stack, {f"t{i}": u for i, u in enumerate(takers)})
    apis = [world.client(f"t{i}").schema("appkit") for i in range(len(takers))]
    for _ in range(ROUNDS // 2):
        org = build_org(stack.db_url, {"owner": owner.id})
        barrier = threading.Barrier(len(apis))

        def take(api: Any, org: BuiltOrg = org, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                api.rpc("accept_invitation", {"token": org.invitation_token}).execute()
                return "ok"
            except APIError as exc:
                return str(exc.code)

        with ThreadPoolExecutor(len(apis)) as pool:
            results = list(pool.map(take, apis))
        assert results.count("ok") == 1 and set(results) == {"ok", "55000"}, results
        with psycopg.connect(stack.db_url) as conn:
            assert one(conn, "select count(*) from appkit.memberships where org_id = %s", (org.id,)) == 2
