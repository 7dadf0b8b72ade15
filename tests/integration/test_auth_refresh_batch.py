"""Concurrent refresh grants share one statement (``REFRESH_WORKERS``): each still gets exactly
the answer it would get alone. The two workers are held on row locks the test takes, so the
requests made meanwhile are queued and then run as one batch, deterministically."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from appkit.local.auth.sessions import Tokens
from appkit.local.config import AuthConfig
from appkit.local.keys import JWTKeys
from tests.auth_support import client, local_only, new_email, random_ip
from tests.support import StackHandle

pytestmark = pytest.mark.integration


def _session(stack: StackHandle, email: str | None = None) -> tuple[str, str, str]:
    """(refresh token, session id, user id) of a new sign-up or a new sign-in of ``email``."""
    c = client(stack)
    if email is None:
        res = c.sign_up({"email": new_email("batch"), "password": "secret-pass-1"})
    else:
        res = c.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert res.session is not None and res.user is not None
    claims = jwt.decode(res.session.access_token, options={"verify_signature": False})
    return res.session.refresh_token, claims["session_id"], res.user.id


async def _burst(stack: StackHandle, blockers: list[tuple[str, str, str]], tokens: list[str]) -> tuple[
        list[httpx.Response], list[httpx.Response]]:
    """Refresh the two ``blockers`` while their sessions are locked (both workers wait in
    Postgres), then ``tokens`` (they queue), then release the locks."""
    headers = {"apikey": stack.anon_key, "X-Forwarded-For": random_ip()}
    url = f"{stack.api_url}/auth/v1/token?grant_type=refresh_token"
    with psycopg.connect(stack.db_url) as locker:
        locker.execute("select 1 from auth.sessions where id = any(%s::uuid[]) for update",
                       ([sid for _, sid, _ in blockers],))
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
            async def refresh(token: str) -> httpx.Response:
                return await http.post(url, headers=headers, json={"refresh_token": token})

            held = []
            with psycopg.connect(stack.db_url, autocommit=True) as watch:
                for token, _, _ in blockers:  # one at a time: each takes a worker of its own
                    held.append(asyncio.create_task(refresh(token)))
                    deadline = time.monotonic() + 10
                    while watch.execute(
                        "select count(*) from pg_stat_activity where usename = 'supabase_auth_admin'"
                        " and wait_event_type = 'Lock'"
                    ).fetchone()[0] < len(held):  # type: ignore[index]
                        assert time.monotonic() < deadline, "the blocked refreshes never reached their lock"
                        await asyncio.sleep(0.01)
            queued = [asyncio.create_task(refresh(token)) for token in tokens]
            await asyncio.sleep(1.0)  # every queued request has reached the server (and waits)
            locker.commit()
            return list(await asyncio.gather(*held)), list(await asyncio.gather(*queued))


def _body(answer: httpx.Response) -> dict[str, Any]:
    return answer.json()  # type: ignore[no-any-return]


async def test_a_batch_answers_each_token_as_it_would_alone(stack: StackHandle, db: psycopg.Connection[Any]) -> None:
    local_only(stack)
    blockers = [_session(stack), _session(stack)]
    first = _session(stack)
    email = db.execute("select email from auth.users where id = %s", (first[2],)).fetchone()[0]  # type: ignore[index]
    good = [first, _session(stack, email), _session(stack, email)] + [_session(stack) for _ in range(5)]
    twice = _session(stack)
    banned = _session(stack)
    # banned by SQL (the admin API's ban also ends the user's sessions)
    db.execute("update auth.users set banned_until = now() + interval '1 day' where id = %s", (banned[2],))
    revoked = _session(stack)
    db.execute("update auth.refresh_tokens set revoked = true, updated_at = now() - interval '1 hour'"
               " where token = %s", (revoked[0],))

    tokens = [t for t, _, _ in good] + [twice[0], twice[0], banned[0], "no-such-refresh-token", revoked[0]]
    held, queued = await _burst(stack, blockers, tokens)

    assert [a.status_code for a in held] == [200, 200]
    answers = dict(zip(range(len(tokens)), queued, strict=True))
    fresh = []
    for i, (token, sid, uid) in enumerate(good):
        assert answers[i].status_code == 200, answers[i].text
        body = _body(answers[i])
        claims = jwt.decode(body["access_token"], stack.jwt_secret, algorithms=["HS256"], audience="authenticated")
        assert (claims["session_id"], claims["sub"], body["user"]["id"]) == (sid, uid, uid)
        assert body["refresh_token"] != token
        fresh.append(body["refresh_token"])
        # the rotated token is the session's one active token, child of the one sent
        rows = db.execute("select token, parent from auth.refresh_tokens where session_id = %s and not revoked",
                          (sid,)).fetchall()
        assert rows == [(body["refresh_token"], token)]
    n = len(good)
    # the same token twice: one rotation, both answered with the new token (the reuse interval)
    assert [answers[n].status_code, answers[n + 1].status_code] == [200, 200]
    assert _body(answers[n])["refresh_token"] == _body(answers[n + 1])["refresh_token"]
    assert db.execute("select count(*) from auth.refresh_tokens where session_id = %s and not revoked",
                      (twice[1],)).fetchone() == (1,)
    assert (answers[n + 2].status_code, _body(answers[n + 2])["error_code"]) == (400, "user_banned")
    assert (answers[n + 3].status_code, _body(answers[n + 3])["error_code"]) == (400, "refresh_token_not_found")
    # a token revoked an hour ago: reuse outside the interval revokes the family
    assert (answers[n + 4].status_code, _body(answers[n + 4])["error_code"]) == (400, "refresh_token_already_used")
    # the queued rotations were written by one transaction: they did run as one batch
    xids = db.execute("select count(distinct xmin::text) from auth.refresh_tokens where token = any(%s)",
                      ([*fresh, _body(answers[n])["refresh_token"]],)).fetchone()
    assert xids == (1,)


async def test_a_failing_batch_falls_back_to_one_refresh_per_token(stack: StackHandle,
                                                                   db: psycopg.Connection[Any]) -> None:
    local_only(stack)
    blockers = [_session(stack), _session(stack)]
    victim = _session(stack)
    others = [_session(stack) for _ in range(4)]
    db.execute(
        "create function public.test_refuse_refresh() returns trigger language plpgsql as $$"
        " begin if new.user_id = %s then raise exception 'refused by a trigger'; end if; return new; end $$"
        .replace("%s", "'" + victim[2] + "'")
    )
    db.execute("create trigger test_refuse_refresh before insert on auth.refresh_tokens"
               " for each row execute function public.test_refuse_refresh()")
    try:
        _, queued = await _burst(stack, blockers, [t for t, _, _ in others] + [victim[0]])
    finally:
        db.execute("drop trigger test_refuse_refresh on auth.refresh_tokens")
        db.execute("drop function public.test_refuse_refresh()")
    # the batch statement failed as a whole; each token was then refreshed on its own: the
    # trigger's victim gets the database error, every other token its new session
    assert [a.status_code for a in queued[:-1]] == [200] * len(others)
    for answer, (token, sid, _) in zip(queued, others, strict=False):
        assert db.execute("select parent from auth.refresh_tokens where token = %s and not revoked",
                          (_body(answer)["refresh_token"],)).fetchone() == (token,)
        assert _body(answer)["access_token"]
        assert sid
    assert queued[-1].status_code == 500
    assert "refused by a trigger" in _body(queued[-1])["msg"]
    # the victim's token was not rotated by the failed batch: it is still its session's active one
    assert db.execute("select revoked from auth.refresh_tokens where token = %s", (victim[0],)).fetchone() == (False,)


async def test_the_batch_statement_maps_each_answer_to_its_token(stack: StackHandle,
                                                                 db: psycopg.Connection[Any]) -> None:
    """``Tokens.refresh_fast`` directly, with a repeated token ahead of the others (arrival
    order is the network's): every answer belongs to its own token's session."""
    local_only(stack)
    twice, a, b = _session(stack), _session(stack), _session(stack)
    tokens = [twice[0], "no-such-refresh-token", twice[0], a[0], twice[0], b[0]]
    tokens_api = Tokens(AuthConfig(), JWTKeys(secret=stack.jwt_secret), "http://issuer")
    conninfo = psycopg.conninfo.make_conninfo(stack.db_url, user="supabase_auth_admin")
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        answers = await tokens_api.refresh_fast(conn, tokens)
    assert [x is None for x in answers] == [False, True, True, False, True, False]
    for answer, (token, sid, uid) in ((answers[0], twice), (answers[3], a), (answers[5], b)):
        assert answer is not None
        body = json.loads(answer)
        claims = jwt.decode(body["access_token"], stack.jwt_secret, algorithms=["HS256"], audience="authenticated")
        assert (claims["session_id"], claims["sub"], body["user"]["id"]) == (sid, uid, uid)
        assert db.execute("select parent, session_id::text from auth.refresh_tokens where token = %s and not revoked",
                          (body["refresh_token"],)).fetchone() == (token, sid)
