"""The FastAPI example, exercised with FastAPI's TestClient against the local stack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from examples.fastapi_notes import SCHEMA, create_app
from fastapi.testclient import TestClient

from appkit import AsyncAppKit
from tests.sdk_support import PASSWORD, require
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> Iterator[TestClient]:
    require(stack, "rest", "auth")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    time.sleep(0.3)  # schema cache reload
    kit = AsyncAppKit(url=stack.api_url, anon_key=stack.anon_key, jwt_secret=stack.jwt_secret or None)
    with TestClient(create_app(kit)) as c:
        yield c


def _token(client: TestClient) -> str:
    r = client.post("/signup", json={"email": f"fa-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_notes_api_per_user(client: TestClient) -> None:
    alice, bob = _token(client), _token(client)
    a = {"Authorization": f"Bearer {alice}"}
    b = {"Authorization": f"Bearer {bob}"}
    r = client.get("/me", headers=a)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["aal"] == "aal1" and me["email"].startswith("fa-")
    created = client.post("/notes", json={"body": "buy milk"}, headers=a)
    assert created.status_code == 201
    note = created.json()
    assert note["owner"] == me["id"] and note["done"] is False
    assert [n["body"] for n in client.get("/notes", headers=a).json()] == ["buy milk"]
    assert client.get("/notes", headers=b).json() == []
    assert client.get(f"/notes/{note['id']}", headers=b).status_code == 404
    assert client.post(f"/notes/{note['id']}/done", headers=b).status_code == 404
    assert client.delete(f"/notes/{note['id']}", headers=b).status_code == 404
    assert client.post(f"/notes/{note['id']}/done", headers=a).json()["done"] is True
    assert [n["id"] for n in client.get("/notes?done=true", headers=a).json()] == [note["id"]]
    assert client.post("/notes", json={"body": ""}, headers=a).status_code == 422  # check constraint
    assert client.delete(f"/notes/{note['id']}", headers=a).status_code == 204
    assert client.get(f"/notes/{note['id']}", headers=a).status_code == 404


def test_unauthenticated_and_forged_tokens_get_401(client: TestClient, stack: StackHandle) -> None:
    assert client.get("/notes").status_code == 401
    assert client.get("/notes", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    r = client.get("/notes", headers={"Authorization": f"Bearer {stack.anon_key}"})
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    if stack.jwt_secret:
        expired = jwt.encode({"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated",
                              "exp": int(time.time()) - 60}, stack.jwt_secret, algorithm="HS256")
        assert client.get("/notes", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
        forged = jwt.encode({"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated",
                             "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
        assert client.get("/notes", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    r = client.post("/login", json={"email": "nobody@example.com", "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


def test_quickstart_example_runs(client: TestClient, stack: StackHandle) -> None:
    import os
    import subprocess
    import sys

    from tests.support import REPO

    env = {**os.environ, "SUPABASE_URL": stack.api_url, "SUPABASE_ANON_KEY": stack.anon_key,
           "SUPABASE_SERVICE_ROLE_KEY": stack.service_role_key, "SUPABASE_JWT_SECRET": stack.jwt_secret}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py")], env=env,
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "bob cannot see it: NotFound" in result.stdout
    assert "alice has 6 notes, 3 done, 3 pages of 2" in result.stdout
