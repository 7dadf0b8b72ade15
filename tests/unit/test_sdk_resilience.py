"""respx: timeouts, 5xx, malformed bodies, retries (only idempotent calls), error mapping."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import respx

from appkit import AppKit, AsyncAppKit, Model, col, errors
from appkit._resilience import RetryPolicy

URL = "http://sdk.test"
REST = f"{URL}/rest/v1"


class Note(Model, table="notes"):
    id: int | None = None
    body: str


def make(**options: Any) -> AppKit:
    options.setdefault("retry_backoff", 0.0)
    return AppKit(url=URL, anon_key="anon", service_role_key="service", **options)


def pg_error(status: int, code: str, message: str = "boom", hint: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "details": None, "hint": hint})


@respx.mock
def test_get_retries_on_503_then_succeeds() -> None:
    route = respx.get(f"{REST}/notes").mock(side_effect=[
        httpx.Response(503, text="busy"), httpx.Response(502), httpx.Response(200, json=[{"id": 1, "body": "x"}])])
    assert make().table(Note).list() == [Note(id=1, body="x")]
    assert route.call_count == 3


@respx.mock
def test_get_gives_up_after_max_retries() -> None:
    route = respx.get(f"{REST}/notes").mock(return_value=httpx.Response(504, text="gateway timeout"))
    with pytest.raises(errors.ServiceUnavailable):
        make(max_retries=2).table(Note).list()
    assert route.call_count == 3


@respx.mock
def test_post_is_not_retried() -> None:
    route = respx.post(f"{REST}/notes").mock(return_value=httpx.Response(503, text="busy"))
    with pytest.raises(errors.ServiceUnavailable):
        make().table(Note).insert(Note(body="x"))
    assert route.call_count == 1


@respx.mock
def test_patch_is_not_retried() -> None:
    route = respx.patch(f"{REST}/notes").mock(return_value=httpx.Response(502))
    with pytest.raises(errors.ServiceUnavailable):
        make().table(Note).update(1, body="x")
    assert route.call_count == 1


@respx.mock
def test_upsert_chunks_are_marked_idempotent_and_retried() -> None:
    route = respx.post(f"{REST}/notes").mock(side_effect=[httpx.Response(503), httpx.Response(201)])
    assert make().table(Note).upsert_many([Note(id=1, body="a")]) == 1
    assert route.call_count == 2
    assert "x-appkit-idempotent" not in route.calls[-1].request.headers
    assert "resolution=merge-duplicates" in route.calls[-1].request.headers["prefer"]


@respx.mock
def test_connection_errors_retry_for_get_only() -> None:
    get = respx.get(f"{REST}/notes").mock(side_effect=[httpx.ConnectError("refused"),
                                                       httpx.Response(200, json=[])])
    assert make().table(Note).list() == []
    assert get.call_count == 2
    post = respx.post(f"{REST}/notes").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.ServiceUnavailable) as exc:
        make().table(Note).insert(Note(body="x"))
    assert exc.value.code == "connection_error"
    assert post.call_count == 1


@respx.mock
def test_other_5xx_not_retried() -> None:
    route = respx.get(f"{REST}/notes").mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(errors.ServiceUnavailable):
        make().table(Note).list()
    assert route.call_count == 1


@respx.mock
def test_timeout_maps_to_timeout() -> None:
    respx.get(f"{REST}/notes").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(errors.Timeout):
        make().table(Note).list()
    respx.post(f"{URL}/auth/v1/token").mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(errors.Timeout):
        make(max_retries=0).auth.sign_in(email="a@b.co", password="x")


def test_timeout_is_configured_on_the_shared_client() -> None:
    app = make(timeout=1.5, connect_timeout=0.5)
    timeout = app._core.http.timeout
    assert (timeout.read, timeout.connect) == (1.5, 0.5)


@respx.mock
def test_malformed_bodies_are_unexpected_response() -> None:
    respx.get(f"{REST}/notes").mock(return_value=httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(errors.UnexpectedResponse):
        make().table(Note).list()
    respx.get(f"{REST}/notes").mock(return_value=httpx.Response(200, json={"not": "a list"}))
    with pytest.raises(errors.UnexpectedResponse):
        make().table(Note).list()
    respx.get(f"{REST}/notes").mock(return_value=httpx.Response(200, json=[{"id": "x", "nobody": 1}]))
    with pytest.raises(errors.UnexpectedResponse):
        make().table(Note).list()
    respx.get(f"{REST}/notes").mock(return_value=httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(errors.ServiceUnavailable):
        make(max_retries=0).table(Note).list()


@pytest.mark.parametrize(("status", "code", "cls"), [
    (403, "42501", errors.PermissionDenied),
    (409, "23505", errors.Conflict),
    (409, "23503", errors.Conflict),
    (400, "23502", errors.ValidationError),
    (400, "22P02", errors.ValidationError),
    (400, "PGRST100", errors.ValidationError),
    (404, "PGRST205", errors.NotFound),
    (401, "PGRST301", errors.AuthError),
    (406, "PGRST116", errors.NotFound),
    (400, "XX000", errors.DatabaseError),
    (500, "57014", errors.Timeout),
])
@respx.mock
def test_postgrest_errors_map_and_keep_details(status: int, code: str, cls: type[errors.AppKitError]) -> None:
    respx.get(f"{REST}/notes").mock(return_value=pg_error(status, code, "server says no", "try this"))
    with pytest.raises(cls) as exc:
        make(max_retries=0).table(Note).list()
    assert (exc.value.code, exc.value.message, exc.value.hint) == (code, "server says no", "try this")


@pytest.mark.parametrize(("status", "body", "cls"), [
    (400, {"code": "invalid_credentials", "msg": "Invalid login credentials"}, errors.AuthError),
    (422, {"code": "user_already_exists", "msg": "User already registered"}, errors.Conflict),
    (429, {"code": "over_request_rate_limit", "msg": "slow down"}, errors.RateLimited),
    (422, {"code": "weak_password", "msg": "weak", "weak_password": {"reasons": ["length"]}}, errors.ValidationError),
    (403, {"code": "signup_disabled", "msg": "no"}, errors.PermissionDenied),
])
@respx.mock
def test_auth_errors_map(status: int, body: dict[str, Any], cls: type[errors.AppKitError]) -> None:
    respx.post(f"{URL}/auth/v1/token").mock(return_value=httpx.Response(
        status, json=body, headers={"x-supabase-api-version": "2024-01-01"}))
    with pytest.raises(cls) as exc:
        make().auth.sign_in(email="a@b.co", password="x")
    assert exc.value.code == body["code"]


@pytest.mark.parametrize(("status", "body", "cls"), [
    (400, {"statusCode": "404", "error": "not_found", "message": "Object not found"}, errors.NotFound),
    (400, {"statusCode": "403", "error": "Unauthorized", "message": "new row violates"}, errors.PermissionDenied),
    (409, {"statusCode": "409", "error": "Duplicate", "message": "exists"}, errors.Conflict),
    (413, {"statusCode": "413", "error": "Payload too large", "message": "big"}, errors.ValidationError),
])
@respx.mock
def test_storage_errors_map(status: int, body: dict[str, Any], cls: type[errors.AppKitError]) -> None:
    respx.get(url__startswith=f"{URL}/storage/v1/object/").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(cls) as exc:
        make().files.download("docs", "a.txt")
    assert exc.value.message == body["message"]


@respx.mock
def test_storage_garbage_error_body_and_network_errors() -> None:
    respx.get(url__startswith=f"{URL}/storage/v1/object/").mock(return_value=httpx.Response(400, text="<html>"))
    with pytest.raises(errors.AppKitError):
        make().files.download("docs", "a.txt")
    respx.get(url__startswith=f"{URL}/storage/v1/object/").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(errors.Timeout):
        make().files.download("docs", "a.txt")


def test_bad_paths_rejected_before_any_request() -> None:
    app = make()
    for path in ["", "/abs", "a/../b", "a//b", "./a"]:
        with pytest.raises(errors.ValidationError):
            app.files.download("docs", path)


def _session(expires_at: int, access: str = "old-token", refresh: str = "r1") -> dict[str, Any]:
    return {"access_token": access, "refresh_token": refresh, "expires_in": 3600, "expires_at": expires_at,
            "token_type": "bearer", "user": {"id": "00000000-0000-0000-0000-000000000001", "aud": "authenticated",
                                             "app_metadata": {}, "user_metadata": {},
                                             "created_at": "2026-01-01T00:00:00Z"}}


@respx.mock
def test_as_user_refreshes_before_calling() -> None:
    from appkit import Session

    refresh = respx.post(f"{URL}/auth/v1/token").mock(
        return_value=httpx.Response(200, json=_session(int(time.time()) + 3600, "new-token", "r2")))
    rest = respx.get(f"{REST}/notes").mock(return_value=httpx.Response(200, json=[]))
    seen: list[Session] = []
    me = make().as_user(Session.model_validate(_session(int(time.time()) + 10)), on_refresh=seen.append)
    assert me.table(Note).list(col(Note.id).eq(1)) == []
    assert json.loads(refresh.calls[0].request.content) == {"refresh_token": "r1"}
    assert rest.calls[0].request.headers["authorization"] == "Bearer new-token"
    assert rest.calls[0].request.headers["apikey"] == "anon"
    assert [s.access_token for s in seen] == ["new-token"]
    me.table(Note).list()
    assert refresh.call_count == 1  # fresh now


@respx.mock
def test_fresh_session_is_not_refreshed_and_admin_sends_service_key() -> None:
    from appkit import Session

    refresh = respx.post(f"{URL}/auth/v1/token").mock(return_value=httpx.Response(500))
    rest = respx.get(f"{REST}/notes").mock(return_value=httpx.Response(200, json=[]))
    app = make()
    app.as_user(Session.model_validate(_session(int(time.time()) + 3600))).table(Note).list()
    assert rest.calls[-1].request.headers["authorization"] == "Bearer old-token"
    app.admin.table(Note).list()
    assert rest.calls[-1].request.headers["authorization"] == "Bearer service"
    assert rest.calls[-1].request.headers["apikey"] == "service"
    app.table(Note).list()
    assert rest.calls[-1].request.headers["authorization"] == "Bearer anon"
    assert refresh.call_count == 0


def test_admin_without_service_key_is_a_config_error() -> None:
    app = AppKit(url=URL, anon_key="anon")
    with pytest.raises(errors.ConfigError):
        app.admin.table(Note)


def test_settings_validation_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.ConfigError):
        AppKit(url="not-a-url", anon_key="x")
    with pytest.raises(errors.ConfigError):
        AppKit(url=URL)
    with pytest.raises(errors.ConfigError):
        AppKit(url=URL, anon_key="x", timout=3)  # a typo is not silently ignored
    with pytest.raises(errors.ConfigError):
        AppKit(url=URL, anon_key="x", timeout=-1)
    monkeypatch.setenv("SUPABASE_URL", URL + "/")
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon-from-env")
    monkeypatch.setenv("APPKIT_TIMEOUT", "3")
    app = AppKit.from_env()
    assert app.settings.url == URL
    assert app.settings.anon_key.get_secret_value() == "anon-from-env"
    assert app.settings.timeout == 3
    assert "anon-from-env" not in repr(app.settings)  # secrets are not printed


def test_backoff_has_full_jitter_and_cap() -> None:
    policy = RetryPolicy(max_retries=5, backoff=0.5, max_backoff=2.0)
    assert policy.delay(0, 1.0) == 0.5
    assert policy.delay(3, 1.0) == 2.0  # capped
    assert policy.delay(3, 0.25) == 0.5
    assert policy.delay(0, 0.0) == 0.0
    assert policy.delay(1, 0.5, server_hint=30) == 2.0


@respx.mock
async def test_async_client_retries_and_maps() -> None:
    route = respx.get(f"{REST}/notes").mock(side_effect=[httpx.Response(503), httpx.Response(200, json=[])])
    async with AsyncAppKit(url=URL, anon_key="anon", retry_backoff=0.0) as app:
        assert await app.table(Note).list() == []
        assert route.call_count == 2
        respx.post(f"{REST}/notes").mock(return_value=pg_error(409, "23505"))
        with pytest.raises(errors.Conflict):
            await app.table(Note).insert(Note(body="x"))


@respx.mock
def test_malformed_success_bodies_of_auth_and_storage() -> None:
    respx.post(f"{URL}/auth/v1/token").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(errors.UnexpectedResponse):
        make().auth.sign_in(email="a@b.co", password="x")
    respx.post(f"{URL}/auth/v1/token").mock(return_value=httpx.Response(200, json={"weird": True}))
    with pytest.raises(errors.AppKitError):
        make().auth.sign_in(email="a@b.co", password="x")
    respx.post(url__startswith=f"{URL}/storage/v1/object/list/").mock(return_value=httpx.Response(200, text="nope"))
    with pytest.raises(errors.UnexpectedResponse):
        make().files.list("docs")
    respx.post(url__startswith=f"{URL}/storage/v1/object/sign/").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(errors.UnexpectedResponse):
        make().files.signed_url("docs", "a.txt")
