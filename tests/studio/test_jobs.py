"""Server-side tests of the studio's Jobs page: queues, a queue's jobs, a job, retry/cancel/purge, schedules."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from appkit import AppKit
from tests.studio.pages_support import assert_no_5xx, csrf, flash, studio_client
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(stack: StackHandle) -> AppKit:
    return AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key).admin


def _dead_job(stack: StackHandle, admin: AppKit, queue: str) -> int:
    job = admin.jobs.enqueue(queue, {"to": "a@example.com"}, max_attempts=1)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.jobs set status = 'dead', attempts = 1, last_error = 'smtp: 550 no such user',"
                     " finished_at = now() where id = %s", (job.id,))
    return job.id


def test_queues_jobs_and_a_job_render(stack: StackHandle, admin: AppKit) -> None:
    queue = f"studio-{uuid.uuid4().hex[:8]}"
    job_id = _dead_job(stack, admin, queue)
    with studio_client(stack) as client:
        index = client.get("/jobs")
        assert index.status_code == 200
        assert f'href="/jobs/{queue}"' in index.text and 'id="throughput"' in index.text
        listing = client.get(f"/jobs/{queue}?status=dead")
        assert listing.status_code == 200 and f"/jobs/{queue}/{job_id}" in listing.text
        assert f"/jobs/{queue}/{job_id}" not in client.get(f"/jobs/{queue}?status=queued").text
        detail = client.get(f"/jobs/{queue}/{job_id}")
        assert detail.status_code == 200
        assert "smtp: 550 no such user" in detail.text and "a@example.com" in detail.text
        assert f"/jobs/{queue}/{job_id}/retry" in detail.text
        # a job asked for under another queue's path redirects to its own
        assert client.get(f"/jobs/other/{job_id}").headers["location"] == f"/jobs/{queue}/{job_id}"
        fragment = client.get("/jobs/-/throughput", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and fragment.text.lstrip().startswith("<table")


def test_keyset_pages_through_a_queue(stack: StackHandle, admin: AppKit) -> None:
    queue = f"studio-{uuid.uuid4().hex[:8]}"
    ids = admin.jobs.enqueue_many(queue, [{"n": i} for i in range(120)])
    with studio_client(stack) as client:
        seen: list[int] = []
        path = f"/jobs/{queue}"
        for _ in range(5):
            page = client.get(path)
            assert page.status_code == 200
            import re

            seen += [int(x) for x in re.findall(rf'href="/jobs/{queue}/(\d+)"', page.text)]
            nxt = re.search(r'id="older" href="([^"]+)"', page.text)
            if not nxt:
                break
            path = nxt.group(1).replace("&amp;", "&")
    assert seen == sorted(ids, reverse=True)


def test_retry_and_cancel(stack: StackHandle, admin: AppKit) -> None:
    queue = f"studio-{uuid.uuid4().hex[:8]}"
    dead = _dead_job(stack, admin, queue)
    waiting = admin.jobs.enqueue(queue, {"n": 1}, delay=3600).id
    with studio_client(stack) as client:
        token = csrf(client)
        r = client.post(f"/jobs/{queue}/{dead}/retry", data={"csrf_token": token})
        assert "queued again" in flash(r)
        assert admin.jobs.get(dead).status.value == "queued" and admin.jobs.get(dead).attempts == 0
        r = client.post(f"/jobs/{queue}/{waiting}/cancel", data={"csrf_token": token})
        assert "cancelled" in flash(r)
        assert admin.jobs.get(waiting).status.value == "cancelled"
        # cancelling a finished job is a conflict page, not a 5xx
        assert client.post(f"/jobs/{queue}/{waiting}/cancel", data={"csrf_token": token}).status_code == 409


def test_schedules_add_and_remove(stack: StackHandle, admin: AppKit) -> None:
    name = f"studio-{uuid.uuid4().hex[:8]}"
    with studio_client(stack) as client:
        token = csrf(client)
        r = client.post("/jobs/-/schedules", data={"csrf_token": token, "name": name, "cron": "*/5 * * * *",
                                                    "queue": "reports", "timezone": "Europe/Paris",
                                                    "payload": '{"kind": "daily"}'})
        assert f"Schedule {name} saved" in flash(r)
        assert name in client.get("/jobs").text
        assert any(s.name == name and s.payload == {"kind": "daily"} for s in admin.jobs.schedules())
        bad = {"csrf_token": token, "name": name + "x", "queue": "q"}
        assert client.post("/jobs/-/schedules", data={**bad, "cron": "not a cron"}).status_code == 400
        assert client.post("/jobs/-/schedules", data={**bad, "cron": "* * * * *", "payload": "{"}).status_code == 400
        assert client.post("/jobs/-/schedules", data={**bad, "cron": "* * * * *", "timezone": "Mars/Base"}
                           ).status_code == 400
        r = client.post(f"/jobs/-/schedules/{name}/delete", data={"csrf_token": token})
        assert "removed" in flash(r)
        assert all(s.name != name for s in admin.jobs.schedules())
        assert client.post(f"/jobs/-/schedules/{name}/delete", data={"csrf_token": token}).status_code == 404


def test_purge(stack: StackHandle, admin: AppKit) -> None:
    queue = f"studio-{uuid.uuid4().hex[:8]}"
    job = admin.jobs.enqueue(queue, {})
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.jobs set status = 'succeeded', finished_at = now() - interval '30 days'"
                     " where id = %s", (job.id,))
    with studio_client(stack) as client:
        token = csrf(client)
        r = client.post("/jobs/-/purge", data={"csrf_token": token, "older_than_days": "10"})
        assert "Purged" in flash(r)
        assert client.post("/jobs/-/purge", data={"csrf_token": token, "older_than_days": "-1"}).status_code == 400
        assert client.post("/jobs/-/purge", data={"csrf_token": token, "older_than_days": "x"}).status_code == 400
    with pytest.raises(Exception, match="not found"):
        admin.jobs.get(job.id)


def test_bad_query_parameters_are_4xx(stack: StackHandle) -> None:
    with studio_client(stack) as client:
        statuses = assert_no_5xx(client, [
            "/jobs/bad%20queue", "/jobs/q?status=zombie", "/jobs/q?before=abc", "/jobs/q?before=-5",
            "/jobs/q?before=99999999999999999999999", "/jobs/q/0", "/jobs/q/99999999999999999999",
            "/jobs/q/123456789", "/jobs/q?status=%00",
        ])
    assert statuses == {
        "/jobs/bad%20queue": 400, "/jobs/q?status=zombie": 400, "/jobs/q?before=abc": 400, "/jobs/q?before=-5": 400,
        "/jobs/q?before=99999999999999999999999": 400, "/jobs/q/0": 400, "/jobs/q/99999999999999999999": 400,
        "/jobs/q/123456789": 404, "/jobs/q?status=%00": 400,
    }


def test_state_changes_need_the_csrf_token(stack: StackHandle, admin: AppKit) -> None:
    queue = f"studio-{uuid.uuid4().hex[:8]}"
    dead = _dead_job(stack, admin, queue)
    with studio_client(stack) as client:
        csrf(client)
        for path, data in [(f"/jobs/{queue}/{dead}/retry", {}), (f"/jobs/{queue}/{dead}/cancel", {}),
                           ("/jobs/-/purge", {"older_than_days": "0"}),
                           ("/jobs/-/schedules", {"name": "x", "cron": "* * * * *", "queue": "q"}),
                           (f"/jobs/{queue}/{dead}/retry", {"csrf_token": "forged-token-forged-token"})]:
            assert client.post(path, data=data).status_code == 403, path
    assert admin.jobs.get(dead).status.value == "dead"
