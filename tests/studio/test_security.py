"""The studio's guards: loopback Host only, strict CSP and security headers, CSRF on every POST, no secret
in what the browser gets, the page registry refusing an unprotected POST, assets served from the package."""

from __future__ import annotations

import re

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from appkit import errors
from appkit.studio import Page, StudioTarget, create_app, csrf_protect
from appkit.studio.app import STATIC_DIR
from appkit.studio.pages import discover
from appkit.studio.security import CSP, CSRF_COOKIE
from appkit.studio.server import StudioServer
from tests.studio.conftest import BASE_URL

pytestmark = pytest.mark.integration

OFFLINE = StudioTarget(api_url="http://127.0.0.1:9", service_role_key="service-secret-key",
                       db_url="postgresql://postgres:db-password@127.0.0.1:9/postgres?connect_timeout=1")


@csrf_protect
async def _echo(request: Request) -> Response:
    form = await request.form()
    return PlainTextResponse(f"ok {form.get('x')}")


async def _unprotected(request: Request) -> Response:
    return PlainTextResponse("changed")


def _offline_client(pages: list[Page]) -> TestClient:
    return TestClient(create_app(OFFLINE, pages=pages), base_url=BASE_URL)


def test_every_page_module_registers_and_protects_its_posts() -> None:
    pages = discover()
    assert pages[0].name == "overview"
    assert {"overview", "tables", "users", "advisors", "migrations", "mail"} <= {p.name for p in pages}
    create_app(OFFLINE)  # raises if any page has a POST route without @csrf_protect


def test_an_unprotected_post_route_is_refused_at_build_time() -> None:
    page = Page(name="bad", title="Bad", path="/bad", routes=[Route("/bad", _unprotected, methods=["POST"])])
    with pytest.raises(RuntimeError, match="without @csrf_protect"):
        create_app(OFFLINE, pages=[page])


def test_csrf_token_required_and_checked() -> None:
    page = Page(name="echo", title="Echo", path="/echo", routes=[Route("/echo", _echo, methods=["POST"])])
    with _offline_client([page]) as client:
        client.get("/static/studio.css")
        cookie = client.cookies[CSRF_COOKIE]
        assert client.post("/echo", data={"x": "1"}).status_code == 403  # no token
        assert client.post("/echo", data={"x": "1", "csrf_token": "w" * 43}).status_code == 403  # wrong token
        ok = client.post("/echo", data={"x": "1", "csrf_token": cookie})
        assert ok.status_code == 200 and ok.text == "ok 1"
        assert client.post("/echo", data={"x": "2"}, headers={"X-CSRF-Token": cookie}).text == "ok 2"
        multipart = client.post("/echo", data={"x": "3", "csrf_token": cookie}, files={"f": ("a.txt", b"hi")})
        assert multipart.text == "ok 3"
        client.cookies.clear()  # a token without its cookie (another browser's) is refused
        assert client.post("/echo", data={"x": "1", "csrf_token": cookie}).status_code == 403


def test_cross_site_post_refused_even_with_token() -> None:
    page = Page(name="echo", title="Echo", path="/echo", routes=[Route("/echo", _echo, methods=["POST"])])
    with _offline_client([page]) as client:
        client.get("/static/studio.css")
        cookie = client.cookies[CSRF_COOKIE]
        evil = client.post("/echo", data={"csrf_token": cookie}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        fetch = client.post("/echo", data={"csrf_token": cookie}, headers={"Sec-Fetch-Site": "cross-site"})
        assert fetch.status_code == 403
        same = client.post("/echo", data={"csrf_token": cookie, "x": "y"},
                           headers={"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:54323", "10.0.0.1:54323", "127.0.0.1.nip.io", ""])
def test_non_loopback_host_refused(host: str) -> None:
    with _offline_client([]) as client:
        resp = client.get("/static/studio.css", headers={"Host": host})
        assert resp.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1:54323", "localhost:1234", "[::1]:54323", "localhost"])
def test_loopback_hosts_accepted(host: str) -> None:
    with _offline_client([]) as client:
        assert client.get("/static/studio.css", headers={"Host": host}).status_code == 200


def test_security_headers_and_no_inline_script(studio: TestClient) -> None:
    resp = studio.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"
    html = resp.text
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=\"/static/" in tag, tag  # every script is a file from the package
    assert not re.search(r"<script[^>]*>\s*[^<\s]", html), "inline script"
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler"


def test_no_key_or_db_url_reaches_the_browser(studio: TestClient, stack) -> None:  # type: ignore[no-untyped-def]
    from starlette.routing import Route as StarletteRoute

    pages = sorted({route.path for page in discover() for route in page.routes
                    if isinstance(route, StarletteRoute) and "{" not in route.path
                    and "GET" in (route.methods or set())})
    assert {"/", "/tables", "/users", "/advisors", "/migrations", "/mail"} <= set(pages)
    pages += ["/nope", "/static/studio.js", "/static/htmx.min.js", "/tables/auth/users", "/tables/public/x"]
    secrets = [stack.service_role_key, stack.db_url, stack.jwt_secret, stack.db_url.split("@")[0]]
    for path in pages:
        resp = studio.get(path)
        blob = resp.text + " ".join(f"{k}: {v}" for k, v in resp.headers.items())
        for secret in secrets:
            if secret:
                assert secret not in blob, f"{path} leaks a secret"


def test_static_assets_are_packaged_and_served(studio: TestClient) -> None:
    for name in ("htmx.min.js", "studio.css", "studio.js"):
        assert (STATIC_DIR / name).is_file()
        resp = studio.get(f"/static/{name}")
        assert resp.status_code == 200
        assert resp.content == (STATIC_DIR / name).read_bytes()
    icon = studio.get("/favicon.ico")
    assert icon.status_code == 301 and icon.headers["location"] == "/static/favicon.svg"
    assert studio.get("/static/favicon.svg").headers["content-type"].startswith("image/svg+xml")
    assert studio.get("/static/../app.py").status_code == 404
    assert studio.get("/static/nope.js").status_code == 404


def test_unknown_path_and_method_are_error_pages(studio: TestClient) -> None:
    resp = studio.get("/no/such/page")
    assert resp.status_code == 404 and "Not found" in resp.text and "<html" in resp.text
    resp = studio.post("/", data={})
    assert resp.status_code == 405


def test_target_validation() -> None:
    with pytest.raises(errors.ConfigError):
        StudioTarget(api_url="ftp://x", service_role_key="k", db_url="postgresql://x")
    with pytest.raises(errors.ConfigError):
        StudioTarget(api_url="http://x", service_role_key="", db_url="postgresql://x")
    with pytest.raises(errors.ConfigError):
        StudioTarget(api_url="http://x", service_role_key="k", db_url="")
    assert "service-secret-key" not in repr(OFFLINE) and "db-password" not in repr(OFFLINE)


def test_server_binds_loopback_only() -> None:
    with pytest.raises(errors.ConfigError, match="loopback"):
        StudioServer(OFFLINE, port=0, host="0.0.0.0")
    with pytest.raises(errors.ConfigError, match="port"):
        StudioServer(OFFLINE, port=70000)
    server = StudioServer(OFFLINE, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with pytest.raises(errors.ConfigError, match="cannot listen"):
            StudioServer(OFFLINE, port=server.port)  # the port is taken
    finally:
        server.stop()


JUNK = ["?%ff=%fe", "?as=x&limit=-1&page=abc&order=;drop&after=%%&offset=1e9&type=../../etc&status=<script>",
        "?q=" + "x" * 3000, "?since=yesterday&until=2020-13-45&org=not-a-uuid&table=a.b.c&actor=1"]


def test_no_page_answers_5xx_to_junk_query_parameters(studio: TestClient) -> None:
    from starlette.routing import Route as StarletteRoute

    paths = {route.path for page in discover() for route in page.routes
             if isinstance(route, StarletteRoute) and "{" not in route.path and "GET" in (route.methods or set())}
    assert {"/", "/tables", "/users", "/advisors", "/migrations", "/mail"} <= paths
    for path in sorted(paths):
        for junk in JUNK:
            resp = studio.get(path + junk)
            assert resp.status_code < 500, (path + junk, resp.status_code, resp.text[:300])


def test_studio_uses_only_the_local_stacks_public_surface() -> None:
    root = STATIC_DIR.parent
    for module in root.rglob("*.py"):
        text = module.read_text()
        assert not re.search(r"(from|import)\s+appkit\.local\.", text), f"{module.name} imports appkit.local internals"
