"""The auth service with e-mail/SMS confirmations, asymmetric signing keys, an OAuth
provider and low rate limits: a second stack with its own config.toml."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from supabase_auth.errors import AuthApiError
from supabase_auth.types import CreateOAuthClientParams, UpdateOAuthClientParams

from tests.auth_support import admin_client, client, last_message, new_email, new_phone, random_ip
from tests.support import StackHandle, free_port, start_stack

pytestmark = pytest.mark.integration

CONFIG = """\
project_id = "appkit-auth-confirm"
[api]
port = {api_port}
[db]
port = {db_port}
[auth]
site_url = "http://localhost:3000"
additional_redirect_urls = ["https://app.example.com/**"]
jwt_expiry = 600
enable_manual_linking = true
signing_keys_path = "./signing_keys.json"
[auth.email]
enable_confirmations = true
double_confirm_changes = true
max_frequency = "2s"
[auth.sms]
enable_signup = true
enable_confirmations = true
template = "Your appkit code is {{{{ .Code }}}}"
max_frequency = "2s"
[auth.rate_limit]
email_sent = 1000
sms_sent = 1000
anonymous_users = 1000
token_refresh = 1000
sign_in_sign_ups = 5
token_verifications = 1000
[auth.external.github]
enabled = true
client_id = "gh-client-id"
secret = "gh-secret"
[auth.external.google]
enabled = false
[auth.oauth_server]
enabled = true
"""


LEGACY_OCT = b"legacy-oct-key-only-verifies-0123456789"


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    workdir: Path = tmp_path_factory.mktemp("authconfirm")
    supa = workdir / "supabase"
    (supa / "migrations").mkdir(parents=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private))
    jwk.update({"kid": "appkit-test-rsa", "alg": "RS256", "key_ops": ["sign", "verify"]})
    # a GOTRUE_JWT_KEYS-style list: an HS256 oct key that only verifies, then the signing RSA key
    legacy = {"kty": "oct", "kid": "legacy-hs", "alg": "HS256", "key_ops": ["verify"],
              "k": base64.urlsafe_b64encode(LEGACY_OCT).rstrip(b"=").decode()}
    (supa / "signing_keys.json").write_text(json.dumps([legacy, jwk]))
    (supa / "config.toml").write_text(CONFIG.format(api_port=free_port(), db_port=free_port()))
    handle = start_stack(workdir)
    try:
        yield handle
    finally:
        handle.stop()


def c(stack: StackHandle, **kw):  # type: ignore[no-untyped-def]
    return client(stack, ip=random_ip(), **kw)


def test_signup_needs_confirmation_and_tokens_are_rs256(cstack) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    cl = c(cstack)
    res = cl.sign_up({"email": email, "password": "secret-pass-1"})
    assert res.session is None and res.user is not None
    assert res.user.email_confirmed_at is None and res.user.confirmation_sent_at is not None
    with pytest.raises(AuthApiError) as err:
        c(cstack).sign_in_with_password({"email": email, "password": "secret-pass-1"})
    assert (err.value.status, err.value.code) == (400, "email_not_confirmed")
    msg = last_message(cstack, email, "signup")
    assert msg["subject"] == "Confirm Your Signup" and msg["otp"] in msg["body"]
    out = cl.verify_otp({"email": email, "token": msg["otp"], "type": "signup"})
    assert out.session is not None and out.user is not None and out.user.email_confirmed_at is not None
    header = jwt.get_unverified_header(out.session.access_token)
    assert header["alg"] == "RS256" and header["kid"] == "appkit-test-rsa"
    jwks = httpx.get(f"{cstack.api_url}/auth/v1/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == ["appkit-test-rsa"] and "d" not in jwks["keys"][0]
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(out.session.access_token, key.key, algorithms=["RS256"], audience="authenticated")
    assert claims["sub"] == res.user.id and claims["exp"] - claims["iat"] == 600
    verified = cl.get_claims()  # the official client verifies against the JWKS
    assert verified is not None and verified["claims"]["sub"] == res.user.id
    # HS256 (the project's secret) is still accepted: the service_role key drives the admin API
    assert admin_client(cstack).get_user_by_id(res.user.id).user.email == email
    assert c(cstack).sign_in_with_password({"email": email, "password": "secret-pass-1"}).session
    # a token of the verify-only oct key (named by its kid) is accepted; the oct key is never published
    legacy = jwt.encode({**claims, "exp": int(time.time()) + 60}, LEGACY_OCT, algorithm="HS256",
                        headers={"kid": "legacy-hs"})
    assert c(cstack).get_user(legacy).user.id == res.user.id
    forged = jwt.encode({**claims, "exp": int(time.time()) + 60}, b"x" * 40, algorithm="HS256",
                        headers={"kid": "legacy-hs"})
    with pytest.raises(AuthApiError) as bad:
        c(cstack).get_user(forged)
    assert (bad.value.status, bad.value.code) == (401, "bad_jwt")


def test_signup_again_for_confirmed_address_does_not_enumerate(cstack) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    admin_client(cstack).create_user({"email": email, "password": "secret-pass-1", "email_confirm": True})
    res = c(cstack).sign_up({"email": email, "password": "other-pass-2"})
    fresh = c(cstack).sign_up({"email": new_email(), "password": "other-pass-2"})
    assert res.session is None and res.user is not None
    assert set(res.user.model_dump(exclude_none=True)) <= set(fresh.user.model_dump(exclude_none=True)) | {"email"}
    # the real user's password was not changed
    assert c(cstack).sign_in_with_password({"email": email, "password": "secret-pass-1"}).session


def test_resend_and_email_frequency_limit(cstack) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    cl = c(cstack)
    cl.sign_up({"email": email, "password": "secret-pass-1"})
    first = last_message(cstack, email, "signup")
    with pytest.raises(AuthApiError) as err:
        cl.resend({"type": "signup", "email": email})
    assert (err.value.status, err.value.code) == (429, "over_email_send_rate_limit")
    time.sleep(2.1)
    cl.resend({"type": "signup", "email": email})
    second = last_message(cstack, email, "signup")
    assert second["id"] != first["id"]
    with pytest.raises(AuthApiError):  # the first code was replaced
        c(cstack).verify_otp({"email": email, "token": first["otp"], "type": "signup"})
    assert c(cstack).verify_otp({"email": email, "token": second["otp"], "type": "signup"}).session


def test_email_change_needs_both_confirmations(cstack) -> None:  # type: ignore[no-untyped-def]
    email, new = new_email(), new_email()
    admin_client(cstack).create_user({"email": email, "password": "secret-pass-1", "email_confirm": True})
    cl = c(cstack)
    cl.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    upd = cl.update_user({"email": new})
    assert upd.user.email == email and upd.user.new_email == new
    to_new = last_message(cstack, new, "email_change")
    to_current = last_message(cstack, email, "email_change")
    first = c(cstack).verify_otp({"email": new, "token": to_new["otp"], "type": "email_change"})
    assert first.session is None
    r = httpx.get(to_current["link"], follow_redirects=False)
    fragment = parse_qs(urlsplit(r.headers["location"]).fragment)
    assert jwt.decode(fragment["access_token"][0], options={"verify_signature": False})["email"] == new
    me = cl.get_user()
    assert me is not None and me.user.email == new and me.user.new_email is None


def test_phone_signup_with_sms_confirmation_and_otp_sign_in(cstack) -> None:  # type: ignore[no-untyped-def]
    phone = new_phone()
    cl = c(cstack)
    res = cl.sign_up({"phone": "+" + phone, "password": "secret-pass-1"})
    assert res.session is None and res.user is not None and res.user.phone == phone
    with pytest.raises(AuthApiError) as err:
        c(cstack).sign_in_with_password({"phone": "+" + phone, "password": "secret-pass-1"})
    assert err.value.code == "phone_not_confirmed"
    sms = last_message(cstack, phone, "sms")
    assert sms["channel"] == "sms" and sms["body"] == f"Your appkit code is {sms['otp']}"
    out = cl.verify_otp({"phone": "+" + phone, "token": sms["otp"], "type": "sms"})
    assert out.session is not None and out.user is not None and out.user.phone_confirmed_at is not None
    time.sleep(2.1)
    sent = c(cstack).sign_in_with_otp({"phone": "+" + phone})
    assert sent.message_id
    sms2 = last_message(cstack, phone, "sms")
    again = c(cstack).verify_otp({"phone": phone, "token": sms2["otp"], "type": "sms"})
    assert again.user is not None and again.user.id == res.user.id


def test_pkce_signup_confirmation(cstack) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    cl = c(cstack, flow_type="pkce")
    cl.sign_up({"email": email, "password": "secret-pass-1",
                "options": {"email_redirect_to": "https://app.example.com/welcome"}})
    msg = last_message(cstack, email, "signup")
    r = httpx.get(msg["link"], follow_redirects=False)
    location = r.headers["location"]
    assert location.startswith("https://app.example.com/welcome?code=")
    out = cl.exchange_code_for_session({"auth_code": parse_qs(urlsplit(location).query)["code"][0]})
    assert out.session is not None and out.user is not None and out.user.email == email


def test_sign_in_rate_limit_per_ip(cstack) -> None:  # type: ignore[no-untyped-def]
    ip = random_ip()
    codes = []
    for _ in range(6):
        r = httpx.post(f"{cstack.api_url}/auth/v1/token?grant_type=password",
                       headers={"apikey": cstack.anon_key, "X-Forwarded-For": ip},
                       json={"email": new_email(), "password": "whatever-1"})
        codes.append((r.status_code, r.json().get("error_code")))
    assert codes[:5] == [(400, "invalid_credentials")] * 5
    assert codes[5] == (429, "over_request_rate_limit")
    with pytest.raises(AuthApiError) as err:
        client(cstack, ip=ip).sign_in_with_password({"email": new_email(), "password": "whatever-1"})
    assert (err.value.status, err.value.code) == (429, "over_request_rate_limit")
    other = httpx.post(f"{cstack.api_url}/auth/v1/token?grant_type=password",
                       headers={"apikey": cstack.anon_key, "X-Forwarded-For": random_ip()},
                       json={"email": new_email(), "password": "whatever-1"})
    assert other.status_code == 400


def test_authorize_redirects_to_configured_provider(cstack) -> None:  # type: ignore[no-untyped-def]
    cl = c(cstack, flow_type="pkce")
    url = cl.sign_in_with_oauth({"provider": "github",
                                 "options": {"redirect_to": "https://app.example.com/after"}}).url
    r = httpx.get(url, follow_redirects=False)
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "github.com", "/login/oauth/authorize")
    q = parse_qs(target.query)
    assert q["client_id"] == ["gh-client-id"] and q["response_type"] == ["code"]
    assert q["redirect_uri"] == [cstack.api_url + "/auth/v1/callback"]
    state = jwt.decode(q["state"][0], options={"verify_signature": False})
    assert state["provider"] == "github" and state["referrer"] == "https://app.example.com/after"
    assert state["flow_state_id"]
    cb = httpx.get(f"{cstack.api_url}/auth/v1/callback?state={q['state'][0]}&code=x", follow_redirects=False)
    assert cb.headers["location"].startswith("https://app.example.com/after#error=")
    for provider, code in (("google", "provider_disabled"), ("nosuch", "validation_failed")):
        r = httpx.get(f"{cstack.api_url}/auth/v1/authorize?provider={provider}", follow_redirects=False)
        assert r.status_code == 400 and r.json()["error_code"] == code


def test_settings_reflect_config_and_anonymous_disabled(cstack) -> None:  # type: ignore[no-untyped-def]
    s = httpx.get(f"{cstack.api_url}/auth/v1/settings", headers={"apikey": cstack.anon_key}).json()
    assert s["mailer_autoconfirm"] is False and s["phone_autoconfirm"] is False
    assert s["external"]["github"] is True and s["external"]["google"] is False and s["external"]["phone"] is True
    with pytest.raises(AuthApiError) as err:
        c(cstack).sign_in_anonymously()
    assert (err.value.status, err.value.code) == (422, "anonymous_provider_disabled")


def test_invite_link_confirms_and_allows_setting_password(cstack) -> None:  # type: ignore[no-untyped-def]
    email = new_email("inv")
    admin_client(cstack).invite_user_by_email(email, {"redirect_to": "https://app.example.com/set-password"})
    msg = last_message(cstack, email, "invite")
    assert "redirect_to=https%3A%2F%2Fapp.example.com%2Fset-password" in msg["link"]
    r = httpx.get(msg["link"], follow_redirects=False)
    location = r.headers["location"]
    assert location.startswith("https://app.example.com/set-password#access_token=")
    fragment = parse_qs(urlsplit(location).fragment)
    cl = c(cstack)
    cl.set_session(fragment["access_token"][0], fragment["refresh_token"][0])
    cl.update_user({"password": "invited-pass-1"})
    assert c(cstack).sign_in_with_password({"email": email, "password": "invited-pass-1"}).session


def _signed_in(stack: StackHandle) -> tuple[Any, str]:
    email = new_email("link")
    admin_client(stack).create_user({"email": email, "password": "secret-pass-1", "email_confirm": True})
    cl = c(stack)
    cl.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    return cl, email


def test_link_identity_starts_the_provider_flow_for_the_signed_in_user(cstack) -> None:  # type: ignore[no-untyped-def]
    cl, _ = _signed_in(cstack)
    res = cl.link_identity({"provider": "github", "options": {"redirect_to": "https://app.example.com/linked"}})
    url = urlsplit(res.url)
    assert (url.netloc, url.path) == ("github.com", "/login/oauth/authorize")
    query = parse_qs(url.query)
    assert query["client_id"] == ["gh-client-id"]
    state = jwt.decode(query["state"][0], options={"verify_signature": False})
    assert state["linking_target_id"] == cl.get_user().user.id
    assert state["referrer"] == "https://app.example.com/linked"
    with pytest.raises(AuthApiError) as disabled:
        cl.link_identity({"provider": "google"})
    assert (disabled.value.status, disabled.value.code) == (400, "provider_disabled")


def test_unlink_identity_with_gotrue_rules(cstack) -> None:  # type: ignore[no-untyped-def]
    cl, email = _signed_in(cstack)
    uid = cl.get_user().user.id
    only = cl.get_user_identities().identities
    assert [i.provider for i in only] == ["email"]
    with pytest.raises(AuthApiError) as single:
        cl.unlink_identity(only[0])
    assert (single.value.status, single.value.code) == (422, "single_identity_not_deletable")
    gh_email = "gh-" + email
    with psycopg.connect(cstack.db_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)"
            " values ('gh-123', %s, %s, 'github', now(), now())",
            (uid, json.dumps({"sub": "gh-123", "email": gh_email})))
        conn.execute("update auth.users set raw_app_meta_data = raw_app_meta_data"
                     " || '{\"providers\": [\"email\", \"github\"]}' where id = %s", (uid,))
    identities = cl.get_user_identities().identities
    assert sorted(i.provider for i in identities) == ["email", "github"]
    # an identity of someone else, or none at all
    headers = {"apikey": cstack.anon_key, "Authorization": f"Bearer {cl.get_session().access_token}"}
    missing = httpx.delete(f"{cstack.api_url}/auth/v1/user/identities/{uuid.uuid4()}", headers=headers)
    assert (missing.status_code, missing.json()["error_code"]) == (422, "identity_not_found")
    bad = httpx.delete(f"{cstack.api_url}/auth/v1/user/identities/not-a-uuid", headers=headers)
    assert (bad.status_code, bad.json()["error_code"]) == (404, "validation_failed")
    # unlinking the e-mail identity: the user's e-mail follows the identity left, providers too
    email_identity = next(i for i in identities if i.provider == "email")
    cl.unlink_identity(email_identity)
    user = admin_client(cstack).get_user_by_id(uid).user
    assert [i.provider for i in user.identities or []] == ["github"]
    assert user.email == gh_email and user.app_metadata["providers"] == ["github"]


def test_identity_endpoints_answer_404_when_manual_linking_is_off(stack) -> None:  # type: ignore[no-untyped-def]
    email = new_email("nolink")
    admin_client(stack).create_user({"email": email, "password": "secret-pass-1", "email_confirm": True})
    cl = client(stack)
    cl.sign_in_with_password({"email": email, "password": "secret-pass-1"})
    with pytest.raises(AuthApiError) as info:
        cl.link_identity({"provider": "github"})
    assert (info.value.status, info.value.code, info.value.message) == (
        404, "manual_linking_disabled", "Manual linking is disabled")
    with pytest.raises(AuthApiError) as unlink:
        cl.unlink_identity(cl.get_user_identities().identities[0])
    assert (unlink.value.status, unlink.value.code) == (404, "manual_linking_disabled")


def test_sso_answers_as_gotrue_without_saml(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthApiError) as info:
        client(stack).sign_in_with_sso({"domain": "example.com"})
    assert (info.value.status, info.value.code, info.value.message) == (
        404, "saml_provider_disabled", "SAML 2.0 is disabled")
    base = f"{stack.api_url}/auth/v1"
    assert httpx.get(f"{base}/sso/saml/metadata").status_code == 404  # open path: no apikey needed
    admin = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    assert httpx.get(f"{base}/admin/sso/providers", headers=admin).json() == {"items": []}
    created = httpx.post(f"{base}/admin/sso/providers", headers=admin, json={"type": "saml", "metadata_url": "x"})
    assert (created.status_code, created.json()["error_code"]) == (404, "saml_provider_disabled")
    one = httpx.get(f"{base}/admin/sso/providers/{uuid.uuid4()}", headers=admin)
    assert (one.status_code, one.json()["error_code"]) == (404, "sso_provider_not_found")
    anon = {"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"}
    assert httpx.get(f"{base}/admin/sso/providers", headers=anon).status_code == 403


def test_oauth_server_admin_client_lifecycle(cstack) -> None:  # type: ignore[no-untyped-def]
    oauth = admin_client(cstack).oauth
    created = oauth.create_client(CreateOAuthClientParams(
        client_name="Partner app", redirect_uris=["https://partner.example.com/cb", "http://localhost:3000/cb"],
        client_uri="https://partner.example.com", scope=None)).client
    assert created is not None and created.client_secret
    assert (created.client_type, created.token_endpoint_auth_method, created.registration_type) == (
        "confidential", "client_secret_basic", "manual")
    assert created.grant_types == ["authorization_code", "refresh_token"] and created.response_types == ["code"]
    with psycopg.connect(cstack.db_url, autocommit=True) as conn:  # only the secret's hash is stored
        stored = conn.execute("select client_secret_hash from auth.oauth_clients where id = %s",
                              (created.client_id,)).fetchone()
    assert stored is not None and created.client_secret not in str(stored[0])
    fetched = oauth.get_client(created.client_id).client
    assert fetched is not None and fetched.client_secret is None and fetched.client_name == "Partner app"
    assert created.client_id in [c.client_id for c in oauth.list_clients().clients]
    updated = oauth.update_client(created.client_id, UpdateOAuthClientParams(client_name="Renamed")).client
    assert updated is not None and updated.client_name == "Renamed" and updated.redirect_uris == created.redirect_uris
    regenerated = oauth.regenerate_client_secret(created.client_id).client
    assert regenerated is not None and regenerated.client_secret not in (None, created.client_secret)
    oauth.delete_client(created.client_id)
    with pytest.raises(AuthApiError) as gone:
        oauth.get_client(created.client_id)
    assert (gone.value.status, gone.value.code) == (404, "oauth_client_not_found")
    public = oauth.create_client(CreateOAuthClientParams(client_name="SPA", redirect_uris=["myapp://cb"])).client
    assert public is not None
    raw = httpx.post(f"{cstack.api_url}/auth/v1/admin/oauth/clients", headers=_admin_headers(cstack),
                     json={"redirect_uris": ["https://spa.example.com"], "token_endpoint_auth_method": "none"})
    assert raw.status_code == 201 and raw.json()["client_type"] == "public" and "client_secret" not in raw.json()
    with pytest.raises(AuthApiError) as no_secret:
        oauth.regenerate_client_secret(raw.json()["client_id"])
    assert no_secret.value.message == "Cannot regenerate secret for public client"


def _admin_headers(stack: StackHandle) -> dict[str, str]:
    return {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}


@pytest.mark.parametrize(("body", "message"), [
    ({}, "400: redirect_uris is required"),
    ({"redirect_uris": []}, "400: redirect_uris cannot be empty"),
    ({"redirect_uris": [f"https://a.example.com/{i}" for i in range(11)]}, "400: redirect_uris cannot exceed 10 items"),
    ({"redirect_uris": ["http://evil.example.com/cb"]},
     "400: invalid redirect_uri 'http://evil.example.com/cb': HTTP scheme only allowed for localhost"),
    ({"redirect_uris": ["javascript://x/alert"]},
     "400: invalid redirect_uri 'javascript://x/alert': scheme 'javascript' is not allowed for security reasons"),
    ({"redirect_uris": ["https://a.example.com/#frag"]},
     "400: invalid redirect_uri 'https://a.example.com/#frag': fragment not allowed in redirect URI"),
    ({"redirect_uris": ["no-scheme"]}, "400: invalid redirect_uri 'no-scheme': must have scheme and host"),
    ({"redirect_uris": ["https://a.example.com"], "grant_types": ["password"]},
     "400: grant_types must only contain 'authorization_code' and/or 'refresh_token'"),
    ({"redirect_uris": ["https://a.example.com"], "client_name": "x" * 1025},
     "400: client_name cannot exceed 1024 characters"),
    ({"redirect_uris": ["https://a.example.com"], "client_type": "other"},
     "400: client_type must be 'public' or 'confidential'"),
    ({"redirect_uris": ["https://a.example.com"], "token_endpoint_auth_method": "magic"},
     "400: token_endpoint_auth_method must be one of: [none client_secret_basic client_secret_post]"),
    ({"redirect_uris": ["https://a.example.com"], "client_type": "public",
      "token_endpoint_auth_method": "client_secret_post"},
     "400: client_type 'public' is inconsistent with token_endpoint_auth_method 'client_secret_post'"
     " (expected client_type 'confidential')"),
    ({"redirect_uris": ["https://a.example.com"], "client_uri": "not a url"}, "400: client_uri must be a valid URL"),
])
def test_oauth_client_registration_is_validated_as_gotrue(cstack, body: dict[str, Any],  # type: ignore[no-untyped-def]
                                                          message: str) -> None:
    r = httpx.post(f"{cstack.api_url}/auth/v1/admin/oauth/clients", headers=_admin_headers(cstack), json=body)
    assert (r.status_code, r.json()["error_code"], r.json()["msg"]) == (400, "validation_failed", message)


def test_oauth_client_paths_refuse_bad_input(cstack) -> None:  # type: ignore[no-untyped-def]
    base = f"{cstack.api_url}/auth/v1/admin/oauth/clients"
    h = _admin_headers(cstack)
    bad = httpx.get(f"{base}/not-a-uuid", headers=h)
    assert (bad.status_code, bad.json()["msg"]) == (400, "invalid client_id format")
    assert httpx.get(f"{base}/{uuid.uuid4()}", headers=h).json()["error_code"] == "oauth_client_not_found"
    made = httpx.post(base, headers=h, json={"redirect_uris": ["https://a.example.com"]}).json()
    empty = httpx.put(f"{base}/{made['client_id']}", headers=h, json={})
    assert (empty.status_code, empty.json()["msg"]) == (400, "No fields provided for update")
    wrong = httpx.put(f"{base}/{made['client_id']}", headers=h, json={"token_endpoint_auth_method": "none"})
    assert wrong.json()["msg"] == ("token_endpoint_auth_method 'none' is not valid for client_type 'confidential';"
                                   " valid methods: [client_secret_basic client_secret_post]")
    typed = httpx.put(f"{base}/{made['client_id']}", headers=h, json={"redirect_uris": "https://a.example.com"})
    assert (typed.status_code, typed.json()["error_code"]) == (400, "bad_json")
    anon = {"apikey": cstack.anon_key, "Authorization": f"Bearer {cstack.anon_key}"}
    assert httpx.get(base, headers=anon).status_code == 403


def test_oauth_server_admin_is_404_when_disabled(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthApiError) as info:
        admin_client(stack).oauth.list_clients()
    assert (info.value.status, info.value.code, info.value.message) == (404, "feature_disabled",
                                                                        "OAuth server is disabled")
