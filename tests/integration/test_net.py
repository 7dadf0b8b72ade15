"""pg_net on the local stack through real SQL: requests sent after commit only, responses and
error rows in net._http_response, pg_net's errors for bad input, the worker's restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psutil
import psycopg
import pytest

from appkit.db.queries import load_queries
from tests.httpsink import HttpSink, start_sink
from tests.support import StackHandle, free_port, start_stack, write_project


@pytest.fixture(scope="module")
def sink() -> Iterator[HttpSink]:
    s = start_sink()
    try:
        yield s
    finally:
        s.close()


def response(db: psycopg.Connection[Any], rid: int, timeout: float = 15) -> dict[str, Any]:
    """The net._http_response row of request ``rid`` once the worker stored it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute(
            "select status_code, content_type, headers, content, timed_out, error_msg from net._http_response "
            "where id = %s", (rid,)).fetchone()
        if row is not None:
            keys = ("status_code", "content_type", "headers", "content", "timed_out", "error_msg")
            return dict(zip(keys, row, strict=True))
        time.sleep(0.05)
    raise AssertionError(f"no response stored for request {rid}")


def test_post_is_sent_after_commit_with_pg_net_headers(stack: StackHandle, db: psycopg.Connection[Any],
                                                       sink: HttpSink) -> None:
    url = f"{sink.url}/echo"
    with psycopg.connect(stack.db_url) as conn:
        rid = conn.execute(
            "select net.http_post(url := %s, body := '{\"hello\": \"world\"}'::jsonb, "
            "headers := '{\"Authorization\": \"Bearer t\"}'::jsonb, timeout_milliseconds := 3000)", (url,),
        ).fetchone()[0]  # type: ignore[index]
        time.sleep(0.5)
        assert not [s for s in sink.seen if s.headers.get("authorization") == "Bearer t"], "sent before commit"
        conn.commit()
    got = [s for s in sink.wait_for(1, path="/echo") if s.headers.get("authorization") == "Bearer t"]
    assert len(got) == 1
    assert got[0].method == "POST"
    assert got[0].json() == {"hello": "world"}
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["user-agent"].startswith("pg_net/")
    row = response(db, rid)
    assert row["status_code"] == 200
    assert row["content"] == '{"method": "POST", "path": "/echo"}'
    assert row["content_type"] == "application/json"
    assert row["headers"]["X-Sink"] == "yes"
    assert row["timed_out"] is False and row["error_msg"] is None
    assert db.execute("select count(*) from net.http_request_queue where id = %s", (rid,)).fetchone() == (0,)


def test_rolled_back_transaction_sends_nothing(stack: StackHandle, db: psycopg.Connection[Any], sink: HttpSink) -> None:
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("select net.http_get(%s)", (f"{sink.url}/rolled-back",))
        conn.rollback()
    marker = db.execute("select net.http_get(%s)", (f"{sink.url}/after-rollback",)).fetchone()[0]  # type: ignore[index]
    sink.wait_for(1, path="/after-rollback")
    response(db, marker)
    time.sleep(0.3)
    assert not [s for s in sink.seen if s.path == "/rolled-back"]


def test_get_params_delete_body_and_positional_post(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    get = db.execute("select net.http_get(%s, params := '{\"q\": \"a b/ü\", \"n\": 1}'::jsonb)",
                     (f"{sink.url}/get?x=1",)).fetchone()[0]  # type: ignore[index]
    delete = db.execute("select net.http_delete(%s, body := '{\"gone\": true}'::jsonb)",
                        (f"{sink.url}/delete",)).fetchone()[0]  # type: ignore[index]
    # the positional form real migrations use: (url, body, params, headers, timeout)
    post = db.execute("select net.http_post(%s, '{\"n\": 2}'::jsonb, '{}'::jsonb, "
                      "'{\"Content-Type\": \"application/json\"}'::jsonb, 2000)",
                      (f"{sink.url}/positional",)).fetchone()[0]  # type: ignore[index]
    [g] = sink.wait_for(1, path="/get")
    assert g.method == "GET" and g.query == {"x": ["1"], "q": ["a b/ü"], "n": ["1"]}
    [d] = sink.wait_for(1, path="/delete")
    assert d.method == "DELETE" and d.json() == {"gone": True}
    [p] = sink.wait_for(1, path="/positional")
    assert p.method == "POST" and p.json() == {"n": 2}
    for rid in (get, delete, post):
        assert response(db, rid)["status_code"] == 200
    url = db.execute("select net._encode_url_with_params_array('http://h:1', array['a=1','b=2'])").fetchone()
    assert url == ("http://h:1/?a=1&b=2",)


@pytest.mark.parametrize(("url", "reason"), [
    ("localhost:6666", "Unsupported URL scheme"),
    ("/relative", "Bad scheme"),
    ("http://", "No host part in the URL"),
    ("http://exa mple.com/", "Malformed input to a URL function"),
    ("http://example.com:99999/", "Port number was not a decimal number between 0 and 65535"),
    ("gopherx://x/", "Unsupported URL scheme"),
])
def test_malformed_url_is_refused_and_nothing_is_queued(db: psycopg.Connection[Any], url: str, reason: str) -> None:
    before = db.execute("select coalesce(max(id), 0) from net.http_request_queue").fetchone()
    for fn in ("net.http_get(%s)", "net.http_post(%s)", "net.http_delete(%s)"):
        with pytest.raises(psycopg.errors.RaiseException) as info:
            db.execute(f"select {fn}", (url,))
        assert info.value.diag.message_primary == f'invalid URL "{url}": {reason}'
    assert db.execute("select coalesce(max(id), 0) from net.http_request_queue").fetchone() == before


def test_other_bad_input_gets_pg_net_errors(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.NotNullViolation, match='null value in column "url"'):
        db.execute("select net.http_post(null, '{\"hello\": \"world\"}')")
    with pytest.raises(psycopg.errors.NotNullViolation, match='null value in column "url"'):
        db.execute("select net.http_get(null)")
    with pytest.raises(psycopg.errors.RaiseException, match='Content-Type header must be "application/json"'):
        db.execute("select net.http_post('http://127.0.0.1:1/', headers := '{\"content-type\": \"text/plain\"}')")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        db.execute("select net.http_post('http://127.0.0.1:1/', body := 'not json')")
    assert db.execute("select net._encode_url_with_params_array(null, null), net._urlencode_string(null)").fetchone() \
        == (None, None)
    result = db.execute("select (net._http_collect_response(-1)).*").fetchone()
    assert result is not None and result[:2] == ("ERROR", "request matching request_id not found")


def test_unreachable_host_timeout_and_empty_reply_are_error_rows(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    closed = free_port()
    refused = [db.execute("select net.http_get(%s)", (f"http://127.0.0.1:{closed}/",)).fetchone()[0]  # type: ignore[index]
               for _ in range(5)]
    slow = db.execute("select net.http_get(%s, timeout_milliseconds := 200)",
                      (f"{sink.url}/slow?ms=1500",)).fetchone()[0]  # type: ignore[index]
    dropped = db.execute("select net.http_get(%s)", (f"{sink.url}/drop",)).fetchone()[0]  # type: ignore[index]
    ftp = db.execute("select net.http_get('ftp://127.0.0.1/x')").fetchone()[0]  # type: ignore[index]
    # a header value that would inject another header is refused, not sent
    injected = db.execute("select net.http_get(%s, headers := jsonb_build_object('X-Bad', e'a\\r\\nInjected: 1'))",
                          (f"{sink.url}/injected",)).fetchone()[0]  # type: ignore[index]
    for rid in refused:
        row = response(db, rid)
        assert row["status_code"] is None and row["timed_out"] is False
        assert row["error_msg"] == "Couldn't connect to server"
    row = response(db, slow)
    assert row["timed_out"] is True and row["status_code"] is None
    assert row["error_msg"].startswith("Timeout of 200 ms reached. Total time: ")
    assert response(db, dropped)["error_msg"] == "Server returned nothing (no headers, no data)"
    assert response(db, ftp)["error_msg"] == "Unsupported protocol"
    row = response(db, injected)
    assert row["status_code"] is None and row["error_msg"]
    assert not [s for s in sink.seen if s.path == "/injected"]
    collected = db.execute("select (net._http_collect_response(%s)).*", (refused[0],)).fetchone()
    assert collected is not None and collected[:2] == ("ERROR", "Couldn't connect to server")
    # the worker keeps working
    ok = db.execute("select net.http_get(%s)", (f"{sink.url}/after-errors",)).fetchone()[0]  # type: ignore[index]
    assert response(db, ok)["status_code"] == 200
    collected = db.execute("select (net._http_collect_response(%s, async := false)).status", (ok,)).fetchone()
    assert collected == ("SUCCESS",)


def test_more_requests_than_the_worker_takes_at_once_all_complete(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    # a generous timeout: the test's threaded server is slow when the machine is busy
    ids = [r[0] for r in db.execute("select net.http_post(%s, jsonb_build_object('i', i), timeout_milliseconds := 60000) "
                                     "from generate_series(1, 600) i", (f"{sink.url}/many",)).fetchall()]
    for rid in ids:
        row = response(db, rid, timeout=120)
        assert row["status_code"] == 200, row["error_msg"]
    assert len(sink.wait_for(600, path="/many")) == 600
    assert sorted(s.json()["i"] for s in sink.seen if s.path == "/many") == list(range(1, 601))  # type: ignore[index]


@pytest.mark.parametrize("clause", ["", "with schema extensions", "with schema pg_catalog"])
def test_create_extension_with_each_schema_clause_migrations_use(stack: StackHandle, clause: str) -> None:
    # installed by default as on Supabase: `if not exists` is a no-op; dropped and created again
    # (rolled back here), pg_net's objects are in schema net whatever the clause
    with psycopg.connect(stack.db_url) as conn:
        conn.execute(f"create extension if not exists pg_net {clause}")
        with pytest.raises(psycopg.errors.DuplicateObject, match='extension "pg_net" already exists'), \
                conn.transaction():
            conn.execute(f"create extension pg_net {clause}")
        conn.execute("drop extension pg_net")
        conn.execute(f"create extension pg_net {clause}")
        assert conn.execute("select net.http_get('http://127.0.0.1:1/') > 0").fetchone() == (True,)
        conn.rollback()


def test_worker_is_up_and_survives_worker_restart(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    db.execute("select net.wait_until_running()")
    db.execute("select net.check_worker_is_up()")
    assert db.execute("select net.worker_restart()").fetchone() == (True,)
    db.execute("select net.wait_until_running()")
    rid = db.execute("select net.http_get(%s)", (f"{sink.url}/after-restart",)).fetchone()[0]  # type: ignore[index]
    assert response(db, rid)["status_code"] == 200


def test_expired_responses_are_collected_after_pg_net_ttl(db: psycopg.Connection[Any]) -> None:
    query = load_queries("appkit.local", "net.sql")["expire_responses"]
    db.execute("insert into net._http_response (id, status_code, created) values (-42, 200, now() - interval '2 hours'),"
               " (-43, 200, now())")
    db.execute("set pg_net.ttl = '1 hour'")
    try:
        db.execute(query)
    finally:
        db.execute("reset pg_net.ttl")
    assert db.execute("select array_agg(id order by id) from net._http_response where id in (-42, -43)").fetchone() \
        == ([-43],)
    db.execute("delete from net._http_response where id = -43")


def test_webhook_trigger_sends_supabase_payload_and_logs_the_hook(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    db.execute("create table public.webhook_items (id int primary key, name text)")
    try:
        db.execute(
            "create trigger items_hook after insert or update or delete on public.webhook_items for each row "
            "execute function supabase_functions.http_request("
            f"'{sink.url}/hook', 'POST', '{{\"Content-Type\":\"application/json\",\"X-Key\":\"k\"}}', '{{}}', '2000')"
        )
        db.execute("insert into public.webhook_items values (1, 'a')")
        db.execute("update public.webhook_items set name = 'b' where id = 1")
        db.execute("delete from public.webhook_items where id = 1")
        seen = sink.wait_for(3, path="/hook")
        # sent concurrently, as pg_net sends them: they may arrive in any order
        by_type = {p["type"]: p for p in (s.json() for s in seen)}  # type: ignore[union-attr,index]
        payloads = [by_type["INSERT"], by_type["UPDATE"], by_type["DELETE"]]
        assert payloads[0] == {"type": "INSERT", "table": "webhook_items", "schema": "public",
                               "record": {"id": 1, "name": "a"}, "old_record": None}
        assert payloads[1] == {"type": "UPDATE", "table": "webhook_items", "schema": "public",
                               "record": {"id": 1, "name": "b"}, "old_record": {"id": 1, "name": "a"}}
        assert payloads[2]["type"] == "DELETE" and payloads[2]["record"] is None
        assert all(s.headers["x-key"] == "k" for s in seen)
        hooks = db.execute(
            "select h.hook_name, h.request_id from supabase_functions.hooks h "
            "where h.hook_table_id = 'public.webhook_items'::regclass::oid order by h.id").fetchall()
        assert [h[0] for h in hooks] == ["items_hook"] * 3
        for _, rid in hooks:
            assert response(db, rid)["status_code"] == 200
        # a bad trigger argument: Supabase's error, and the row, the hook log and the queue untouched
        db.execute(
            "create trigger items_bad after insert on public.webhook_items for each row "
            f"execute function supabase_functions.http_request('{sink.url}/hook', 'PUT')")
        before = db.execute("select (select count(*) from supabase_functions.hooks), "
                            "(select coalesce(max(id), 0) from net.http_request_queue)").fetchone()
        with pytest.raises(psycopg.errors.RaiseException, match="method argument PUT is invalid"):
            db.execute("insert into public.webhook_items values (2, 'x')")
        assert db.execute("select count(*) from public.webhook_items").fetchone() == (0,)
        assert db.execute("select (select count(*) from supabase_functions.hooks), "
                          "(select coalesce(max(id), 0) from net.http_request_queue)").fetchone() == before
    finally:
        db.execute("drop table public.webhook_items")
    # what dumps of Supabase projects do with the log's sequence
    db.execute("select setval('supabase_functions.hooks_id_seq', 500, true)")
    assert db.execute("select nextval('supabase_functions.hooks_id_seq')").fetchone() == (501,)


#: (object, operation, actor) -> allowed, as on Supabase (pg_net grants its schema to PUBLIC;
#: supabase_functions' default privileges grant its tables to the API roles)
NET_MATRIX: dict[tuple[str, str], dict[str, bool]] = {
    ("net.http_post", "execute"): {"anon": True, "authenticated": True, "service_role": True},
    ("net._http_response", "select"): {"anon": True, "authenticated": True, "service_role": True},
    ("net.http_request_queue", "select"): {"anon": True, "authenticated": True, "service_role": True},
    ("supabase_functions.hooks", "select"): {"anon": True, "authenticated": True, "service_role": True},
    ("supabase_functions.http_request", "execute"): {"anon": True, "authenticated": True, "service_role": True},
    ("net.worker_restart", "execute"): {"anon": True, "authenticated": True, "service_role": True},
}
_CHECKS = {
    "execute": "select bool_and(has_function_privilege(%(actor)s, p.oid, 'execute')) from pg_proc p "
               "where p.proname = split_part(%(obj)s, '.', 2) "
               "and p.pronamespace = split_part(%(obj)s, '.', 1)::regnamespace",
    "select": "select has_table_privilege(%(actor)s, %(obj)s, 'select')",
}


def test_privilege_matrix(db: psycopg.Connection[Any]) -> None:
    rows: list[tuple[str, str, str, bool, bool]] = []
    for (obj, op), actors in NET_MATRIX.items():
        for actor, expected in actors.items():
            got = db.execute(_CHECKS[op], {"actor": actor, "obj": obj}).fetchone()
            rows.append((obj, op, actor, expected, bool(got and got[0])))
    bad = [r for r in rows if r[3] != r[4]]
    table = "\n".join(f"{o:34} {op:8} {a:14} expected={e!s:5} got={g}" for o, op, a, e, g in rows)
    assert not bad, f"privileges differ from Supabase's:\n{table}"


def test_requests_in_flight_when_the_stack_stops_are_sent_after_restart(tmp_path: Any) -> None:
    sink = start_sink()
    workdir = tmp_path / "netrestart"
    workdir.mkdir()
    write_project(workdir)
    stack = start_stack(workdir)
    try:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            ids = [conn.execute("select net.http_get(%s, timeout_milliseconds := 30000)",
                                (f"{sink.url}/hang",)).fetchone()[0] for _ in range(3)]  # type: ignore[index]
        sink.wait_for(3, path="/hang")
        stack.stop()  # with the three requests in flight: no response was stored
        sink.release()
        stack = start_stack(workdir)
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            for rid in ids:
                assert response(conn, rid)["status_code"] == 200
            assert conn.execute("select count(*) from net.http_request_queue").fetchone() == (0,)
        assert len(sink.wait_for(6, path="/hang")) == 6  # sent again after the restart
    finally:
        stack.stop()
        sink.close()


def test_queued_requests_survive_a_postgres_crash_and_the_supervisors_restart(tmp_path: Any) -> None:
    sink = start_sink()
    workdir = tmp_path / "netcrash"
    workdir.mkdir()
    write_project(workdir)
    stack = start_stack(workdir)
    try:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            ids = [conn.execute("select net.http_get(%s, timeout_milliseconds := 30000)",
                                (f"{sink.url}/hang",)).fetchone()[0] for _ in range(3)]  # type: ignore[index]
        sink.wait_for(3, path="/hang")
        datadir = (workdir / "supabase" / ".appkit" / "pgdata").resolve()
        postmaster = psutil.Process(int((datadir / "postmaster.pid").read_text().splitlines()[0]))
        postmaster.kill()
        postmaster.wait(10)
        sink.release()  # the three answers arrive while the database is down
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(stack.db_url, autocommit=True, connect_timeout=2) as conn:
                    conn.execute("select net.wait_until_running()")
                    break
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            for rid in ids:
                assert response(conn, rid)["status_code"] == 200
            assert conn.execute("select count(*) from net.http_request_queue").fetchone() == (0,)
            after = conn.execute("select net.http_get(%s)", (f"{sink.url}/after-crash",)).fetchone()[0]  # type: ignore[index]
            assert response(conn, after)["status_code"] == 200
        assert stack.process is not None and stack.process.poll() is None
        # request URLs (which may carry keys in their query) are not logged
        assert "/after-crash" not in (workdir / "stack-test.log").read_text()
    finally:
        stack.stop()
        sink.close()
