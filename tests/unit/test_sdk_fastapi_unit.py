"""The FastAPI dependency without a stack: token checks, sync and async kits, error handlers."""

# (no postponed annotations: FastAPI resolves the local ``User`` aliases at runtime)
import time
import uuid
from typing import Annotated, Any

import httpx
import jwt
import respx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from appkit import AppKit, AsyncAppKit, Model, errors
from appkit.integrations.fastapi import UserContext, install_error_handlers, status_for, user_dependency

URL = "http://sdk.test"
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


class Note(Model, table="notes"):
    id: int | None = None
    body: str


def token(**over: Any) -> str:
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated",
              "exp": int(time.time()) + 600, **over}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


def sync_api() -> FastAPI:
    kit = AppKit(url=URL, anon_key="anon", jwt_secret=SECRET, max_retries=0)
    api = FastAPI()
    install_error_handlers(api)
    User = Annotated[UserContext[AppKit], Depends(user_dependency(kit, allow_anonymous=False))]

    @api.get("/notes")
    def notes(user: User) -> list[Note]:
        return user.client.table(Note).list()

    @api.get("/boom")
    def boom(user: User) -> None:
        raise errors.Conflict("taken", code="23505", hint="pick another")

    return api


@respx.mock
def test_sync_kit_dependency_forwards_the_callers_token() -> None:
    rest = respx.get(f"{URL}/rest/v1/notes").mock(return_value=httpx.Response(200, json=[{"id": 1, "body": "a"}]))
    t = token()
    with TestClient(sync_api()) as client:
        r = client.get("/notes", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 200 and r.json() == [{"id": 1, "body": "a"}]
        assert rest.calls[0].request.headers["authorization"] == f"Bearer {t}"
        r = client.get("/boom", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 409 and r.json() == {"message": "taken", "code": "23505", "hint": "pick another"}


def test_rejections() -> None:
    with TestClient(sync_api()) as client:
        assert client.get("/notes").status_code == 401
        assert client.get("/notes", headers={"Authorization": "Basic abc"}).status_code == 401
        for bad in [token(exp=int(time.time()) - 5), token(aud="other"), token(role="anon", aud=None) + "x",
                    jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "y" * 40, algorithm="HS256")]:
            r = client.get("/notes", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = client.get("/notes", headers={"Authorization": f"Bearer {token(is_anonymous=True)}"})
        assert r.status_code == 403


@respx.mock
def test_async_kit_dependency_and_upstream_failure() -> None:
    respx.get(f"{URL}/rest/v1/notes").mock(return_value=httpx.Response(503, text="down"))
    kit = AsyncAppKit(url=URL, anon_key="anon", jwt_secret=SECRET, max_retries=0)
    api = FastAPI()
    install_error_handlers(api)
    User = Annotated[UserContext[AsyncAppKit], Depends(user_dependency(kit))]

    @api.get("/notes")
    async def notes(user: User) -> list[Note]:
        return await user.client.table(Note).list()

    with TestClient(api) as client:
        r = client.get("/notes", headers={"Authorization": f"Bearer {token()}"})
        assert r.status_code == 503


def test_status_table() -> None:
    assert status_for(errors.NotFound("x")) == 404
    assert status_for(errors.Timeout("x")) == 504
    assert status_for(errors.DatabaseError("x")) == 500
