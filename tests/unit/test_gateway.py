"""The gateway's prefix dispatch gives services the scope Starlette's Mount would."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from appkit.local.gateway import PrefixDispatch


def service(name: str) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"svc": name, "root_path": request.scope["root_path"],
                             "path": request.url.path, "param": request.path_params.get("rest", "")})

    return Starlette(routes=[Route("/", echo), Route("/{rest:path}", echo)])


async def fallback(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await PlainTextResponse("fallback", status_code=404)(scope, receive, send)


@pytest.fixture()
def client() -> httpx.AsyncClient:
    app = PrefixDispatch([("/rest/v1", service("rest")), ("/auth/v1", service("auth"))], fallback)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_prefix_routes_with_mount_semantics(client: httpx.AsyncClient) -> None:
    r = await client.get("/rest/v1/notes")
    assert r.json() == {"svc": "rest", "root_path": "/rest/v1", "path": "/rest/v1/notes", "param": "notes"}
    r = await client.get("/auth/v1/admin/users/1")
    assert r.json()["svc"] == "auth" and r.json()["param"] == "admin/users/1"


async def test_bare_prefix_is_the_service_root(client: httpx.AsyncClient) -> None:
    r = await client.get("/rest/v1")
    assert r.json() == {"svc": "rest", "root_path": "/rest/v1", "path": "/rest/v1/", "param": ""}


@pytest.mark.parametrize("path", ["/rest/v10/x", "/rest", "/", "/authx/v1", "/health"])
async def test_non_matching_paths_fall_through(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert (r.status_code, r.text) == (404, "fallback")
