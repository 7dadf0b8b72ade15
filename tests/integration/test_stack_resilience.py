"""Every service survives the database ending its connections (a restart, `db reset`,
an admin's pg_terminate_backend): the next request is served, not a 500."""

from __future__ import annotations

import httpx
import psycopg


def test_requests_succeed_after_all_backends_are_killed(stack) -> None:  # type: ignore[no-untyped-def]
    service = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    with httpx.Client(base_url=stack.api_url, headers=service, timeout=30) as http:
        calls = [
            ("GET", "/storage/v1/bucket"),
            ("GET", "/auth/v1/admin/users?per_page=1"),
            ("GET", "/rest/v1/"),
            ("GET", "/auth/v1/settings"),
        ]
        for method, path in calls:  # warm every pool
            assert http.request(method, path).status_code == 200, path
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            killed = conn.execute(
                "select count(pg_terminate_backend(pid, 5000)) from pg_stat_activity "
                "where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'"
            ).fetchone()
        assert killed is not None and killed[0] > 0
        for method, path in calls:
            r = http.request(method, path)
            assert r.status_code == 200, (path, r.status_code, r.text)
