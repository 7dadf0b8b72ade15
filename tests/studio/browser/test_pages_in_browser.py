"""The issue's browser scenarios on the Storage, Jobs and Organizations pages, in a real Chromium:
a file uploaded through the browser downloads byte-identical, a dead job retried from the Jobs page
completes, an invitation created in the UI is accepted through the SDK. Each takes its page's screenshot."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appkit import AppKit
from tests.studio.browser.conftest import wait_for
from tests.support import StackHandle

pytestmark = pytest.mark.integration
PASSWORD = "studio-browser-password-1"


@pytest.fixture(scope="module")
def app(stack: StackHandle) -> Iterator[AppKit]:
    client = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)
    yield client
    client.close()


def _by_css(browser: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def _submit(browser: Any, form_selector: str) -> None:
    """Click the form's submit button and wait for the next page (every form is a Post/Redirect/Get)."""
    old = _by_css(browser, "html")
    _by_css(browser, f"{form_selector} button[type=submit], {form_selector} button").click()
    wait_for(lambda: _stale(old), what="the next page")


def _stale(element: Any) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.tag_name  # noqa: B018 - touching a replaced page's element raises
    except StaleElementReferenceException:
        return True
    return False


def test_file_uploaded_in_the_browser_downloads_byte_identical(
        browser: Any, studio_url: str, app: AppKit, downloads: Path, tmp_path: Path,
        shot: Callable[[str], Path]) -> None:
    bucket = f"browser-{uuid.uuid4().hex[:8]}"
    app.admin.files.create_bucket(bucket)
    app.admin.files.upload(bucket, "reports/.emptyFolderPlaceholder", b"")
    source = tmp_path / "quarterly report.bin"
    source.write_bytes(os.urandom(300_000) + b"\x00\xff end")
    browser.get(f"{studio_url}/storage")
    shot("storage")
    browser.get(f"{studio_url}/storage/{bucket}/reports/")
    _by_css(browser, "#file").send_keys(str(source))
    _submit(browser, "#upload")
    assert "Uploaded quarterly report.bin" in _by_css(browser, ".flash").text
    shot("storage-folder")
    # the SDK reads what the browser uploaded
    assert app.admin.files.download(bucket, "reports/quarterly report.bin") == source.read_bytes()
    _by_css(browser, 'a[href$="quarterly%20report.bin"]').click()
    wait_for(lambda: "download" in browser.page_source and _by_css(browser, "#download"), what="the object page")
    shot("storage-object")
    before = set(downloads.iterdir())
    _by_css(browser, "#download").click()
    got = wait_for(lambda: [p for p in set(downloads.iterdir()) - before
                            if not p.name.endswith(".crdownload") and p.stat().st_size == source.stat().st_size],
                   what="the download")
    assert got[0].name == "quarterly report.bin"
    assert hashlib.sha256(got[0].read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_large_file_uploaded_in_chunks_by_the_browser(browser: Any, studio_url: str, app: AppKit,
                                                      tmp_path: Path) -> None:
    """storage.js sends a file over the threshold in resumable chunks; the object arrives byte-identical."""
    bucket = f"browser-{uuid.uuid4().hex[:8]}"
    app.admin.files.create_bucket(bucket)
    source = tmp_path / "video.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024 + 5))
    browser.get(f"{studio_url}/storage/{bucket}/")
    _by_css(browser, "#file").send_keys(str(source))
    _by_css(browser, "#upload button[type=submit]").click()
    wait_for(lambda: "Uploaded video.bin" in browser.page_source, timeout=120, what="the chunked upload")
    assert "flash=Uploaded%20video.bin" in browser.current_url  # storage.js's redirect, not the form's (+)
    assert app.admin.files.download(bucket, "video.bin") == source.read_bytes()


def test_files_dropped_on_the_upload_form_are_uploaded(browser: Any, studio_url: str, app: AppKit) -> None:
    """storage.js's drop handler: a drop event carrying a file fills the form and submits it."""
    bucket = f"browser-{uuid.uuid4().hex[:8]}"
    app.admin.files.create_bucket(bucket)
    browser.get(f"{studio_url}/storage/{bucket}/")
    old = _by_css(browser, "html")
    browser.execute_script("""
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array([0, 1, 2, 250, 251, 252])], "dropped.bin"));
        const zone = document.getElementById("dropzone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """)
    wait_for(lambda: _stale(old), what="the upload's redirect")
    assert "Uploaded dropped.bin" in _by_css(browser, ".flash").text
    assert app.admin.files.download(bucket, "dropped.bin") == bytes([0, 1, 2, 250, 251, 252])


def test_dead_job_retried_from_the_jobs_page_completes(
        browser: Any, studio_url: str, stack: StackHandle, app: AppKit, shot: Callable[[str], Path]) -> None:
    from appkit.jobs import Worker

    queue = f"browser-{uuid.uuid4().hex[:8]}"
    calls: list[dict[str, Any]] = []

    worker = Worker(stack.db_url, concurrency=2, poll_interval=0.2, schedules=False, shutdown_grace=5)

    @worker.job(queue, backoff=0)
    def flaky(payload: dict[str, Any]) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("upstream said 503")

    thread = threading.Thread(target=lambda: asyncio.run(worker.serve([queue], handle_signals=False)), daemon=True)
    thread.start()
    try:
        job = app.admin.jobs.enqueue(queue, {"report": 7}, max_attempts=1)
        wait_for(lambda: app.admin.jobs.get(job.id).status.value == "dead", what="the job to die")
        browser.get(f"{studio_url}/jobs")
        assert queue in _by_css(browser, "#queues").text
        shot("jobs")
        browser.get(f"{studio_url}/jobs/{queue}?status=dead")
        shot("jobs-queue")
        _by_css(browser, f'a[href="/jobs/{queue}/{job.id}"]').click()
        wait_for(lambda: _by_css(browser, "#job-status").text == "dead", what="the job page")
        assert "upstream said 503" in _by_css(browser, "#last-error").text
        shot("jobs-job")
        _submit(browser, "#retry")
        assert "queued again" in _by_css(browser, ".flash").text

        def succeeded() -> bool:
            browser.refresh()
            return bool(_by_css(browser, "#job-status").text == "succeeded")

        wait_for(succeeded, what="the retried job to succeed")
        assert len(calls) == 2 and app.admin.jobs.get(job.id).attempts == 1
    finally:
        worker.stop()
        thread.join(15)


def test_jobs_throughput_updates_live(browser: Any, studio_url: str, stack: StackHandle, app: AppKit) -> None:
    """htmx (served by the studio, under its CSP) refreshes the throughput table without a reload."""
    import psycopg

    queue = f"live-{uuid.uuid4().hex[:8]}"
    ids = app.admin.jobs.enqueue_many(queue, [{"n": i} for i in range(3)])
    browser.get(f"{studio_url}/jobs")
    page = _by_css(browser, "html")
    assert queue not in _by_css(browser, "#throughput").text
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("update appkit.jobs set status = 'succeeded', finished_at = now() where id = any(%s)", (ids,))
    wait_for(lambda: queue in _by_css(browser, "#throughput").text, timeout=20, what="the live refresh")
    assert not _stale(page)  # the same page: only the fragment was swapped
    assert "3" in _by_css(browser, "#throughput").text.split(queue, 1)[1].split()[0]


def test_invitation_created_in_the_ui_is_accepted_through_the_sdk(
        browser: Any, studio_url: str, app: AppKit, shot: Callable[[str], Path]) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    guest = f"guest-{uuid.uuid4().hex[:8]}@example.com"
    app.admin.users.create(email=owner, password=PASSWORD, email_confirm=True)
    guest_id = str(app.admin.users.create(email=guest, password=PASSWORD, email_confirm=True).id)
    slug = f"browser-{uuid.uuid4().hex[:8]}"
    browser.get(f"{studio_url}/orgs")
    form = _by_css(browser, "#create-org")
    form.find_element("name", "name").send_keys("Browser Co")
    form.find_element("name", "slug").send_keys(slug)
    form.find_element("name", "owner").send_keys(owner)
    _submit(browser, "#create-org")
    org_id = _by_css(browser, "#org-id").text
    assert owner in _by_css(browser, "#members").text
    invite = _by_css(browser, "#invite")
    invite.find_element("name", "email").send_keys(guest)
    _submit(browser, "#invite")
    token = _by_css(browser, "#invitation-token").text.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    shot("orgs-org")
    me = app.as_user(app.auth.sign_in(email=guest, password=PASSWORD))
    membership = me.orgs.accept(token)
    assert str(membership.user_id) == guest_id and str(membership.org_id) == org_id
    browser.get(f"{studio_url}/orgs/{org_id}")
    assert guest in _by_css(browser, "#members").text and "accepted" in _by_css(browser, "#invitations").text
    browser.get(f"{studio_url}/orgs")
    shot("orgs")


def test_audit_and_notifications_pages(browser: Any, studio_url: str, app: AppKit,
                                       shot: Callable[[str], Path]) -> None:
    email = f"notify-{uuid.uuid4().hex[:8]}@example.com"
    app.admin.users.create(email=email, password=PASSWORD, email_confirm=True)
    browser.get(f"{studio_url}/notifications")
    form = _by_css(browser, "#send-user")
    form.find_element("name", "user").send_keys(email)
    form.find_element("name", "title").send_keys("Your export is ready")
    _submit(browser, "#send-user")
    assert "sent to 1 user" in _by_css(browser, ".flash").text
    assert "Your export is ready" in _by_css(browser, "#recent").text
    shot("notifications")
    me = app.as_user(app.auth.sign_in(email=email, password=PASSWORD))
    assert [n.title for n in me.notifications.list()] == ["Your export is ready"]
    browser.get(f"{studio_url}/audit?table=appkit.organizations")
    assert "appkit.organizations" in _by_css(browser, "#entries").text
    shot("audit")
