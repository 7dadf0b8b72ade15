"""No 5xx from bad input: hypothesis generates requests for every route of each service
(random JSON with deep nesting, NUL characters, lone surrogates, huge numbers and wrong
types; random headers, query strings and percent-encoded path segments) and each answer
must be below 500 and, when it is an error, in the service's documented shape.

The long run of the same generator is benchmarks/fuzz_services.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_support import FIXTURE_SQL, ROUTES, FuzzRequest, auth_headers, requests_for, shape_problem
from tests.realtime_support import user_token
from tests.support import StackHandle

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("APPKIT_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def fuzz_client(stack: StackHandle) -> Iterator[tuple[httpx.Client, StackHandle]]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for statement in FIXTURE_SQL:
            conn.execute(statement)  # type: ignore[arg-type]
    with httpx.Client(base_url=stack.api_url, timeout=60) as http:
        yield http, stack


def send(http: httpx.Client, req: FuzzRequest) -> httpx.Response:
    headers = {k: v.encode("utf-8", "surrogatepass") for k, v in req.headers.items()}
    params = [(k.encode("utf-8", "surrogatepass").decode("latin-1"), v.encode("utf-8", "surrogatepass")
               .decode("latin-1")) for k, v in req.query]
    return http.request(req.method, req.path, params=params, headers=headers, content=req.body)


def check(service: str, http: httpx.Client, req: FuzzRequest) -> None:
    r = send(http, req)
    problem = shape_problem(service, req.method, r.status_code, r.headers.get("content-type", ""), r.content)
    assert problem is None, f"{problem}: {req!r} -> {r.content[:300]!r}"


def _test(service: str):  # type: ignore[no-untyped-def]
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
    @given(data=__import__("hypothesis").strategies.data())
    def run(fuzz_client: tuple[httpx.Client, StackHandle], data) -> None:  # type: ignore[no-untyped-def]
        http, stack = fuzz_client
        auth = auth_headers(stack.anon_key, stack.service_role_key, user_token(stack))
        req = data.draw(requests_for(ROUTES[service], auth))
        check(service, http, req)

    return run


test_rest_never_answers_5xx = _test("rest")
test_auth_never_answers_5xx = _test("auth")
test_storage_never_answers_5xx = _test("storage")
test_realtime_never_answers_5xx = _test("realtime")
