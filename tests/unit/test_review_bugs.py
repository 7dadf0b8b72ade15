"""Three bugs found in review: the rate limiter's pruning, a remembered expired apikey,
and REST's quoted "null" in a list."""

from __future__ import annotations

import time

import jwt

from appkit.local.auth.ratelimit import PRUNE_AT, Limiter
from appkit.local.rest.builder import pg_array_literal
from appkit.local.rest.parser import parse_list


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pruning_keeps_the_hits_of_a_longer_limit() -> None:
    clock = Clock()
    lim = Limiter(clock)
    assert lim.allow("anonymous_users", "1.2.3.4", 1, 3600.0)
    for i in range(PRUNE_AT + 10):  # a flood of short-window keys forces pruning
        lim.allow("token_refresh", f"10.0.{i}", 100, 1.0)
        if i == PRUNE_AT // 2:
            clock.now += 5  # the 1 s keys so far are idle now
    assert not lim.allow("anonymous_users", "1.2.3.4", 1, 3600.0), "the 1-hour hit was forgotten"
    assert 3590 <= lim.retry_after("anonymous_users", "1.2.3.4") <= 3600
    assert lim.last("token_refresh", "10.0.0") is None, "idle short-window keys were pruned"


def test_pruning_is_not_repeated_on_every_call_when_nothing_is_idle() -> None:
    clock = Clock()
    lim = Limiter(clock)
    for i in range(PRUNE_AT + 1):
        lim.allow("k", str(i), 10, 3600.0)
    for i in range(2000):
        lim.allow("k", f"more-{i}", 10, 3600.0)
    assert len(lim._hits) == PRUNE_AT + 2001
    assert lim._prune_at >= 2 * PRUNE_AT  # the next prune waits for the count to double


def test_retry_after() -> None:
    clock = Clock()
    lim = Limiter(clock)
    assert lim.retry_after("k", "a") == 0
    assert lim.allow("k", "a", 2, 60.0) and lim.allow("k", "a", 2, 60.0)
    clock.now += 10.2
    assert not lim.allow("k", "a", 2, 60.0)
    assert lim.retry_after("k", "a") == 50
    clock.now += 50
    assert lim.allow("k", "a", 2, 60.0)


def test_a_quoted_null_in_a_list_is_the_string() -> None:
    items = parse_list('("null",null,NULL,x,"a,b")', "filter")
    assert items == ["null", "null", "NULL", "x", "a,b"]
    assert pg_array_literal(items) == '{"null",NULL,NULL,"x","a,b"}'


def test_an_expired_user_jwt_as_apikey_is_refused_after_it_expires() -> None:
    from starlette.requests import Request

    from appkit.local.auth.guards import Guards
    from appkit.local.config import DEFAULT_JWT_SECRET, ProjectConfig
    from appkit.local.keys import JWTKeys

    keys = JWTKeys.load(DEFAULT_JWT_SECRET, None)
    guards = Guards(ProjectConfig().auth, keys)
    token = jwt.encode({"sub": "u", "role": "authenticated", "exp": int(time.time()) + 2}, DEFAULT_JWT_SECRET,
                       algorithm="HS256")

    def call() -> object:
        scope = {"type": "http", "method": "GET", "path": "/user", "query_string": b"",
                 "headers": [(b"apikey", token.encode())]}
        return guards._check_apikey(Request(scope))

    assert call() is None
    time.sleep(3)
    denied = call()
    assert denied is not None and denied.status_code == 401  # type: ignore[attr-defined]
