"""The gateway's observability: /metrics (Prometheus text, service-role only), the
X-Request-Id on every response, and `appkit dev --log-format json` whose lines for one
request -- the access line and a service's own lines -- share that request's id."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.realtime_support import client, config, user_token
from tests.support import StackHandle, start_stack, write_project

pytestmark = pytest.mark.integration


def _metrics(stack: StackHandle) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = httpx.get(f"{stack.api_url}/metrics", headers={"Authorization": f"Bearer {stack.service_role_key}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def test_metrics_need_the_service_role_key(stack: StackHandle) -> None:
    url = f"{stack.api_url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"apikey": stack.anon_key}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {stack.anon_key}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic !!!"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer"}).status_code == 401
    basic = base64.b64encode(f"service_role:{stack.service_role_key}".encode()).decode()
    assert httpx.get(url, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong_user = base64.b64encode(f"admin:{stack.service_role_key}".encode()).decode()
    assert httpx.get(url, headers={"Authorization": f"Basic {wrong_user}"}).status_code == 401
    assert httpx.get(url, headers={"apikey": stack.service_role_key}).status_code == 200
    assert httpx.post(url, headers={"apikey": stack.service_role_key}).status_code == 405


async def test_metrics_count_requests_errors_pools_database_and_realtime(stack: StackHandle) -> None:
    keys = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    before = _metrics(stack)
    with httpx.Client(base_url=stack.api_url, headers=keys, timeout=30) as http:
        for _ in range(3):
            assert http.get("/rest/v1/").status_code == 200
        assert http.get("/rest/v1/no_such_table_for_metrics").status_code == 404
        assert http.get("/auth/v1/admin/users?per_page=1").status_code == 200
        assert http.get("/storage/v1/bucket").status_code == 200
    rt = await client(stack)
    ch = rt.channel("metrics-probe", config())
    await ch.subscribe()
    try:
        after = _metrics(stack)
    finally:
        await rt.close()
    grew = _value(after, "appkit_http_requests_total", service="rest", method="GET", status="200") - _value(
        before, "appkit_http_requests_total", service="rest", method="GET", status="200")
    assert grew >= 3
    assert _value(after, "appkit_http_requests_total", service="rest", status="404") >= 1
    assert _value(after, "appkit_http_errors_total", service="rest", **{"class": "4xx"}) >= 1
    assert _value(after, "appkit_http_requests_total", service="auth", status="200") >= 1
    assert _value(after, "appkit_http_requests_total", service="storage", status="200") >= 1
    assert _value(after, "appkit_http_request_duration_seconds_count", service="rest") >= 4
    assert any(lab.get("le") == "0.1" for lab, _ in after["appkit_http_request_duration_seconds_bucket"])
    assert _value(after, "appkit_database_up") == 1
    assert "appkit_database_restarts_total" in after
    assert after["appkit_db_pool_max"], "at least one pool is open"
    assert _value(after, "appkit_realtime_connections") >= 1
    assert _value(after, "appkit_realtime_channels") >= 1
    assert _value(after, "appkit_websocket_connections", service="realtime") >= 1


def test_every_response_carries_a_request_id(stack: StackHandle) -> None:
    r = httpx.get(f"{stack.api_url}/rest/v1/", headers={"apikey": stack.anon_key, "X-Request-Id": "client-abc.1"})
    assert r.headers["x-request-id"] == "client-abc.1"
    r = httpx.get(f"{stack.api_url}/auth/v1/settings", headers={"apikey": stack.anon_key})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    for bad in (b"has space", b"x" * 200, "nl\u00e9".encode()):
        r = httpx.get(f"{stack.api_url}/health", headers={"X-Request-Id": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), bad
    pre = httpx.options(f"{stack.api_url}/rest/v1/",
                        headers={"Origin": "http://x", "Access-Control-Request-Method": "GET"})
    assert "x-request-id" in pre.headers


def test_json_logs_share_the_request_id_across_a_services_lines(tmp_path: Path) -> None:
    write_project(tmp_path)
    h = start_stack(tmp_path, args=("--log-format", "json"))
    try:
        keys = {"apikey": h.service_role_key, "Authorization": f"Bearer {h.service_role_key}"}
        with psycopg.connect(h.db_url, autocommit=True) as conn:
            conn.execute("create function public.boom() returns boolean language plpgsql as "
                         "$$ begin raise exception 'boom'; end $$")
            conn.execute("grant execute on function public.boom() to authenticated")
            conn.execute("create policy boom on storage.objects for select to authenticated using (public.boom())")
        assert httpx.post(f"{h.api_url}/storage/v1/bucket", headers=keys,
                          json={"id": "logs", "name": "logs"}).status_code == 200
        assert httpx.post(f"{h.api_url}/storage/v1/object/logs/a.txt", headers={**keys, "Content-Type": "text/plain"},
                          content=b"a").status_code == 200  # a row the policy is evaluated on
        user = {"apikey": h.anon_key, "Authorization": f"Bearer {user_token(h)}", "X-Request-Id": "req-json-1"}
        r = httpx.post(f"{h.api_url}/storage/v1/object/list/logs", headers=user, json={"prefix": ""})
        assert r.headers["x-request-id"] == "req-json-1" and r.status_code == 500, r.text
        assert httpx.get(f"{h.api_url}/rest/v1/", headers={"apikey": h.anon_key,
                                                            "X-Request-Id": "req-json-2"}).status_code == 200
    finally:
        h.stop()
    records = []
    for line in (tmp_path / "stack-test.log").read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    assert records, "no JSON log lines"
    for rec in records:
        assert {"ts", "level", "logger", "msg", "request_id"} <= set(rec), rec
    mine = [rec for rec in records if rec["request_id"] == "req-json-1"]
    loggers = {rec["logger"] for rec in mine}
    assert "appkit.local.access" in loggers and "appkit.local.storage" in loggers, mine
    access = next(rec for rec in mine if rec["logger"] == "appkit.local.access")
    assert access["path"] == "/storage/v1/object/list/logs" and access["status"] == r.status_code
    assert access["service"] == "storage" and access["method"] == "POST" and access["duration_ms"] > 0
    other = [rec for rec in records if rec["request_id"] == "req-json-2"]
    assert [rec["logger"] for rec in other] == ["appkit.local.access"]
    assert not any(h.service_role_key in json.dumps(rec) or h.anon_key in json.dumps(rec) for rec in records)
    assert any(rec["request_id"] is None and rec["logger"].startswith("appkit.local") for rec in records), \
        "lines outside a request have no id"
