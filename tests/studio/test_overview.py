"""The Overview page: services, database size, request rates, advisor count; no 5xx on bad query parameters."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from appkit.studio.pages.overview import parse_metrics

pytestmark = pytest.mark.integration


def test_overview_shows_services_database_and_rates(studio: TestClient) -> None:
    first = studio.get("/")
    assert first.status_code == 200
    html = first.text
    assert 'id="services"' in html and ">up<" in html and ">down<" not in html
    for service in ("database", "auth", "rest", "storage"):
        assert f'<div class="label">{service}</div>' in html
    assert 'id="database"' in html and "MiB" in html  # pg_database_size, formatted
    assert 'id="rates"' in html and 'hx-trigger="every 10s"' in html
    second = studio.get("/")  # the second view has rates (requests per minute between the two)
    assert second.status_code == 200 and 'id="rates"' in second.text


@pytest.mark.parametrize("query", ["?x=1", "?%ff=%fe", "?" + "a" * 5000, "?as=;drop table x"])
def test_overview_ignores_bad_query_parameters(studio: TestClient, query: str) -> None:
    assert studio.get("/" + query).status_code == 200


def test_parse_metrics() -> None:
    text = (
        "# HELP appkit_http_requests_total HTTP requests answered\n"
        "# TYPE appkit_http_requests_total counter\n"
        'appkit_http_requests_total{service="rest",method="GET",status="200"} 5.0\n'
        'appkit_http_requests_total{service="rest",method="POST",status="201"} 2.0\n'
        'appkit_http_requests_total{service="auth",method="POST",status="400"} 1.0\n'
        "# TYPE appkit_http_errors_total counter\n"
        'appkit_http_errors_total{service="auth",class="4xx"} 1.0\n'
        "# TYPE appkit_database_up gauge\n"
        "appkit_database_up 1.0\n"
    )
    sample, gauges = parse_metrics(text)
    assert sample.requests == {"rest": 7.0, "auth": 1.0}
    assert sample.errors == {("auth", "4xx"): 1.0}
    assert gauges["appkit_database_up"] == 1.0
