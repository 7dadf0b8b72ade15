"""Revocations survive a Postgres crash: each of logout, password change, ban, user
deletion, factor removal and an admin write is acknowledged, the postmaster is killed
with SIGKILL at once (before the WAL writer's 200 ms flush), the stack restarts it, and
the change is still there. On a stack of its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.support import StackHandle, start_stack, write_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    workdir = tmp_path_factory.mktemp("durable")
    write_project(workdir)
    handle = start_stack(workdir)
    try:
        yield handle
    finally:
        handle.stop()


def _crash_and_recover(h: StackHandle) -> None:
    assert h.workdir is not None
    datadir = (h.workdir / "supabase" / ".appkit" / "pgdata").resolve()
    pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    psutil.Process(pid).kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            current = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            current = pid
        if current != pid:
            try:
                if httpx.get(f"{h.api_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise AssertionError("the stack did not bring postgres back")


def _http(h: StackHandle, token: str | None = None) -> httpx.Client:
    headers = {"apikey": h.anon_key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=f"{h.api_url}/auth/v1", headers=headers, timeout=30)


def _admin(h: StackHandle) -> httpx.Client:
    return httpx.Client(base_url=f"{h.api_url}/auth/v1", timeout=30,
                        headers={"apikey": h.service_role_key, "Authorization": f"Bearer {h.service_role_key}"})


def _signup(h: StackHandle, password: str = "first-Passw0rd") -> tuple[str, dict[str, object]]:
    email = f"d-{uuid.uuid4().hex[:10]}@example.com"
    with _http(h) as http:
        r = http.post("/signup", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return email, r.json()


def _sign_in(h: StackHandle, email: str, password: str) -> httpx.Response:
    with _http(h) as http:
        return http.post("/token?grant_type=password", json={"email": email, "password": password})


def test_a_global_logout_survives_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    _, session = _signup(h)
    with _http(h, str(session["access_token"])) as http:
        assert http.post("/logout?scope=global").status_code == 204
    _crash_and_recover(h)
    with _http(h) as http:
        r = http.post("/token?grant_type=refresh_token", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 400, "the revoked refresh token works again"


def test_a_password_change_survives_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    email, session = _signup(h)
    with _http(h, str(session["access_token"])) as http:
        assert http.put("/user", json={"password": "second-Passw0rd"}).status_code == 200
    _crash_and_recover(h)
    assert _sign_in(h, email, "first-Passw0rd").status_code == 400
    assert _sign_in(h, email, "second-Passw0rd").status_code == 200


def test_a_ban_survives_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    email, session = _signup(h)
    uid = session["user"]["id"]  # type: ignore[index]
    with _admin(h) as admin:
        assert admin.put(f"/admin/users/{uid}", json={"ban_duration": "876000h"}).status_code == 200
    _crash_and_recover(h)
    r = _sign_in(h, email, "first-Passw0rd")
    assert r.status_code == 400 and r.json()["error_code"] == "user_banned", r.text


def test_a_user_deletion_survives_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    _, session = _signup(h)
    uid = session["user"]["id"]  # type: ignore[index]
    with _admin(h) as admin:
        assert admin.delete(f"/admin/users/{uid}").status_code == 200
    _crash_and_recover(h)
    with _admin(h) as admin:
        assert admin.get(f"/admin/users/{uid}").status_code == 404


def test_a_factor_removal_survives_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    _, session = _signup(h)
    uid = session["user"]["id"]  # type: ignore[index]
    with _http(h, str(session["access_token"])) as http:
        r = http.post("/factors", json={"factor_type": "totp", "friendly_name": "phone"})
        assert r.status_code == 200, r.text
        factor = r.json()["id"]
        assert http.delete(f"/factors/{factor}").status_code == 200
    _crash_and_recover(h)
    with _admin(h) as admin:
        r = admin.get(f"/admin/users/{uid}/factors")
    assert r.status_code == 200 and r.json() == [], r.text


def test_admin_user_creations_survive_a_crash(crash_stack: StackHandle) -> None:
    h = crash_stack
    ids = []
    with _admin(h) as admin:
        for _ in range(20):
            r = admin.post("/admin/users", json={"email": f"a-{uuid.uuid4().hex[:10]}@example.com",
                                                  "password": "admin-Passw0rd", "email_confirm": True})
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
    _crash_and_recover(h)
    with _admin(h) as admin:
        missing = [uid for uid in ids if admin.get(f"/admin/users/{uid}").status_code != 200]
    assert missing == [], f"{len(missing)} of {len(ids)} acknowledged creations were lost"


def test_a_sign_up_survives_a_crash_and_the_user_signs_in_again(crash_stack: StackHandle) -> None:
    """Sign-ups are durable; sign-ins keep the fast path: a session lost to a crash only
    means signing in again."""
    h = crash_stack
    email, _ = _signup(h)
    _crash_and_recover(h)
    assert _sign_in(h, email, "first-Passw0rd").status_code == 200
    _crash_and_recover(h)
    assert _sign_in(h, email, "first-Passw0rd").status_code == 200
