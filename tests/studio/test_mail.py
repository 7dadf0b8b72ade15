"""The Mail page: captured e-mails with clickable links, a message's body with its URLs as links, 400/404 for
bad parameters, and no Mail page against a hosted project."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest
from starlette.testclient import TestClient

from appkit import AppKit
from appkit.studio import StudioTarget, create_app
from appkit.studio.pages.mail import segments
from tests.studio.conftest import BASE_URL
from tests.support import StackHandle

pytestmark = pytest.mark.integration


def test_captured_invite_is_listed_with_its_link(studio: TestClient, stack: StackHandle) -> None:
    if stack.workdir is None:
        pytest.skip("captured mail is the local stack's")
    email = f"mail-{uuid.uuid4().hex[:10]}@example.com"
    with AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key) as app:
        app.admin.users.invite(email)
    resp = studio.get("/mail", params={"to": email})
    assert resp.status_code == 200
    assert email in resp.text and ">invite<" in resp.text
    link = re.search(r'<a href="([^"]+)" class="mail-link"', resp.text)
    assert link is not None and unescape(link.group(1)).startswith(stack.api_url + "/auth/v1/verify?")
    detail_path = re.search(r'<a href="(/mail/\d+)">', resp.text)
    assert detail_path is not None
    detail = studio.get(detail_path.group(1))
    assert detail.status_code == 200 and 'id="mail-link"' in detail.text and 'id="mail-body"' in detail.text
    assert studio.get("/mail", params={"type": "invite", "limit": "5"}).status_code == 200
    other = studio.get("/mail", params={"to": "nobody-" + email})
    assert 'id="no-mail"' in other.text


@pytest.mark.parametrize("query", [{"type": "spam"}, {"limit": "0"}, {"limit": "x"}, {"limit": "5000"},
                                   {"to": "a" * 400}])
def test_bad_parameters_are_400(studio: TestClient, query: dict[str, str]) -> None:
    assert studio.get("/mail", params=query).status_code == 400


@pytest.mark.parametrize("path", ["/mail/0", "/mail/x", "/mail/99999999999", "/mail/" + "9" * 40])
def test_unknown_message_is_404(studio: TestClient, path: str) -> None:
    assert studio.get(path).status_code == 404


def test_segments_link_only_http_urls() -> None:
    assert segments("go to https://a.example/x?y=1 now; javascript:alert(1) <b>") == [
        ("go to ", False), ("https://a.example/x?y=1", True), (" now; javascript:alert(1) <b>", False)]


def test_hosted_target_has_no_mail_page(stack: StackHandle) -> None:
    target = StudioTarget(api_url=stack.api_url, service_role_key=stack.service_role_key, db_url=stack.db_url)
    with TestClient(create_app(target), base_url=BASE_URL) as client:
        assert client.get("/mail").status_code == 404
        assert 'href="/mail"' not in client.get("/").text
