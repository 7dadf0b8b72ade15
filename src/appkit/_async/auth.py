"""Auth service over the official ``supabase_auth`` client.

``app.auth`` signs people up and in (it never keeps a session of its own, so one app object
can serve many users); calls that act as a user take the ``Session`` explicitly, or use the
session of the client they were reached from (``app.as_user(s).auth.update_user(...)``).
``verify(token)`` checks an access token locally (HS256 secret or the project's JWKS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from supabase_auth import AsyncGoTrueClient
from supabase_auth.types import (
    AuthMFAChallengeResponse,
    AuthMFAEnrollResponse,
    AuthMFAGetAuthenticatorAssuranceLevelResponse,
    AuthResponse,
    Factor,
    Session,
    User,
)

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.auth.jwt import ASYMMETRIC_ALGS, JWKSCache, Principal, UnknownKey, token_header, verify_token


@dataclass(frozen=True)
class OAuthStart:
    """Where to send the user for an OAuth sign-in, and the PKCE verifier to keep until the callback."""

    url: str
    code_verifier: str


OtpType = Literal["email", "signup", "magiclink", "recovery", "invite", "email_change", "sms", "phone_change"]


class AsyncAuth:
    """Sign-up/sign-in flows, user-bound operations and server-side token verification."""

    def __init__(self, scope: AsyncScope, jwks: JWKSCache | None = None) -> None:
        self._scope = scope
        self._core = scope.core
        self._jwks = jwks or JWKSCache()

    # sign-up / sign-in -------------------------------------------------------
    async def sign_up(self, *, password: str, email: str | None = None, phone: str | None = None,
                      data: Mapping[str, Any] | None = None, redirect_to: str | None = None) -> Session:
        """Create a user. Returns the session, or raises ``errors.ConfirmationRequired``
        (carrying the new ``user_id``) when the project requires confirming the address first."""
        credentials: dict[str, Any] = {"password": password, "options": {"data": dict(data or {})}}
        if email:
            credentials["email"] = email
            if redirect_to:
                credentials["options"]["email_redirect_to"] = redirect_to
        elif phone:
            credentials["phone"] = phone
        else:
            raise errors.ValidationError("sign_up needs an email or a phone", code="validation_failed")
        with boundary():
            response = await self._core.auth_client(flow_type="implicit").sign_up(credentials)  # type: ignore[arg-type]
        return _session_or_confirmation(response)

    async def sign_in(self, *, password: str, email: str | None = None, phone: str | None = None) -> Session:
        """Sign in with a password."""
        if not (email or phone):
            raise errors.ValidationError("sign_in needs an email or a phone", code="validation_failed")
        credentials: dict[str, Any] = {"password": password}
        credentials["email" if email else "phone"] = email or phone
        with boundary():
            response = await self._core.auth_client().sign_in_with_password(credentials)  # type: ignore[arg-type]
        return _session(response)

    async def sign_in_anonymously(self, *, data: Mapping[str, Any] | None = None) -> Session:
        with boundary():
            response = await self._core.auth_client().sign_in_anonymously(
                {"options": {"data": dict(data or {})}}
            )
        return _session(response)

    async def sign_in_with_otp(self, *, email: str | None = None, phone: str | None = None,
                               create_user: bool = True, redirect_to: str | None = None,
                               data: Mapping[str, Any] | None = None) -> None:
        """Send a one-time code / magic link; finish with ``verify_otp``."""
        options: dict[str, Any] = {"should_create_user": create_user}
        if data:
            options["data"] = dict(data)
        if email:
            if redirect_to:
                options["email_redirect_to"] = redirect_to
            credentials: dict[str, Any] = {"email": email, "options": options}
        elif phone:
            credentials = {"phone": phone, "options": options}
        else:
            raise errors.ValidationError("sign_in_with_otp needs an email or a phone", code="validation_failed")
        with boundary():
            await self._core.auth_client(flow_type="implicit").sign_in_with_otp(credentials)  # type: ignore[arg-type]

    async def verify_otp(self, *, token: str | None = None, type: OtpType = "email", email: str | None = None,
                         phone: str | None = None, token_hash: str | None = None) -> Session:
        """Exchange a one-time code (with ``email``/``phone``) or a link's ``token_hash`` for a session."""
        params: dict[str, Any] = {"type": type}
        if token_hash:
            params["token_hash"] = token_hash
        elif not token:
            raise errors.ValidationError("verify_otp needs a token or a token_hash", code="validation_failed")
        else:
            params["token"] = token
            if email:
                params["email"] = email
            elif phone:
                params["phone"] = phone
            else:
                raise errors.ValidationError("verify_otp needs an email, a phone or a token_hash",
                                             code="validation_failed")
        with boundary():
            response = await self._core.auth_client().verify_otp(params)  # type: ignore[arg-type]
        return _session(response)

    async def refresh(self, session: Session | str | None = None) -> Session:
        """A new session from a refresh token (or this client's own session)."""
        if session is None and self._scope.session is not None:
            return await self._scope.refresh()
        refresh_token = session if isinstance(session, str) else (session.refresh_token if session else None)
        if not refresh_token:
            raise errors.AuthError("no refresh token", code="session_missing")
        with boundary():
            response = await self._core.auth_client().refresh_session(refresh_token)
        return _session(response)

    async def reset_password(self, email: str, *, redirect_to: str | None = None) -> None:
        """Send a password-recovery message; finish with ``verify_otp(type="recovery")``."""
        options: dict[str, Any] = {"redirect_to": redirect_to} if redirect_to else {}
        with boundary():
            await self._core.auth_client(flow_type="implicit").reset_password_for_email(email, options)  # type: ignore[arg-type]

    async def oauth_url(self, provider: str, *, redirect_to: str | None = None,
                        scopes: str | None = None) -> OAuthStart:
        """The provider's sign-in URL with a PKCE challenge; keep ``code_verifier`` for ``exchange_code``."""
        client = self._core.auth_client(flow_type="pkce")
        options: dict[str, Any] = {}
        if redirect_to:
            options["redirect_to"] = redirect_to
        if scopes:
            options["scopes"] = scopes
        with boundary():
            response = await client.sign_in_with_oauth({"provider": provider, "options": options})  # type: ignore[typeddict-item]
            verifier = await client._storage.get_item(f"{client._storage_key}-code-verifier")
        if not verifier:
            raise errors.AuthError("no PKCE verifier was generated", code="pkce_missing")
        return OAuthStart(url=response.url, code_verifier=verifier.partition("/")[0])

    async def exchange_code(self, code: str, code_verifier: str, *, redirect_to: str | None = None) -> Session:
        """Finish a PKCE flow (OAuth callback ``?code=``) with the verifier from ``oauth_url``."""
        params: dict[str, Any] = {"auth_code": code, "code_verifier": code_verifier}
        if redirect_to:
            params["redirect_to"] = redirect_to
        with boundary():
            response = await self._core.auth_client().exchange_code_for_session(params)  # type: ignore[arg-type]
        return _session(response)

    # user-bound --------------------------------------------------------------
    async def _session(self, session: Session | None) -> Session:
        if session is not None:
            return session
        if self._scope.session is not None:
            await self._scope.token()  # refresh first if it is about to expire
            assert self._scope.session is not None
            return self._scope.session
        raise errors.AuthError("this call needs a session: pass session= or use app.as_user(session)",
                               code="session_missing")

    async def _client_for(self, session: Session | None) -> AsyncGoTrueClient:
        s = await self._session(session)
        client = self._core.auth_client(token=s.access_token)
        with boundary():
            await client.set_session(s.access_token, s.refresh_token)
        return client

    async def get_user(self, session: Session | None = None) -> User:
        s = await self._session(session)
        with boundary():
            response = await self._core.auth_client().get_user(s.access_token)
        if response is None:
            raise errors.NotFound("user not found", code="user_not_found")
        return response.user

    async def update_user(self, session: Session | None = None, *, email: str | None = None,
                          password: str | None = None, phone: str | None = None,
                          data: Mapping[str, Any] | None = None) -> User:
        """Change the signed-in user's email, password, phone or metadata."""
        attributes: dict[str, Any] = {}
        if email is not None:
            attributes["email"] = email
        if password is not None:
            attributes["password"] = password
        if phone is not None:
            attributes["phone"] = phone
        if data is not None:
            attributes["data"] = dict(data)
        if not attributes:
            raise errors.ValidationError("nothing to update", code="validation_failed")
        client = await self._client_for(session)
        with boundary():
            response = await client.update_user(attributes)  # type: ignore[arg-type]
        return response.user

    async def sign_out(self, session: Session | None = None, *,
                       scope: Literal["local", "global", "others"] = "local") -> None:
        """Revoke the session's refresh token (``global``: every session of the user)."""
        s = await self._session(session)
        with boundary():
            await self._core.auth_client().admin.sign_out(s.access_token, scope)

    # MFA ---------------------------------------------------------------------
    async def mfa_enroll(self, session: Session | None = None, *, factor_type: Literal["totp", "phone"] = "totp",
                         friendly_name: str | None = None, issuer: str | None = None,
                         phone: str | None = None) -> AuthMFAEnrollResponse:
        params: dict[str, Any] = {"factor_type": factor_type}
        if friendly_name:
            params["friendly_name"] = friendly_name
        if issuer:
            params["issuer"] = issuer
        if phone:
            params["phone"] = phone
        client = await self._client_for(session)
        with boundary():
            return await client.mfa.enroll(params)  # type: ignore[arg-type]

    async def mfa_challenge(self, factor_id: str, session: Session | None = None) -> AuthMFAChallengeResponse:
        client = await self._client_for(session)
        with boundary():
            return await client.mfa.challenge({"factor_id": factor_id})

    async def mfa_verify(self, factor_id: str, challenge_id: str, code: str,
                         session: Session | None = None) -> Session:
        """Verify a challenge; returns the upgraded (aal2) session (and adopts it on a user client)."""
        client = await self._client_for(session)
        with boundary():
            await client.mfa.verify({"factor_id": factor_id, "challenge_id": challenge_id, "code": code})
            new = await client.get_session()
        if new is None:
            raise errors.AuthError("the server returned no session", code="session_missing")
        if session is None and self._scope.session is not None:
            self._scope.set_session(new)
        return new

    async def mfa_challenge_and_verify(self, factor_id: str, code: str,
                                       session: Session | None = None) -> Session:
        challenge = await self.mfa_challenge(factor_id, session)
        return await self.mfa_verify(factor_id, challenge.id, code, session)

    async def mfa_unenroll(self, factor_id: str, session: Session | None = None) -> None:
        client = await self._client_for(session)
        with boundary():
            await client.mfa.unenroll({"factor_id": factor_id})

    async def mfa_list_factors(self, session: Session | None = None) -> list[Factor]:
        user = await self.get_user(session)
        return list(user.factors or [])

    async def mfa_assurance_level(
        self, session: Session | None = None
    ) -> AuthMFAGetAuthenticatorAssuranceLevelResponse:
        client = await self._client_for(session)
        with boundary():
            return await client.mfa.get_authenticator_assurance_level()

    # server-side verification ------------------------------------------------
    async def verify(self, token: str, *, audience: str | None = "default") -> Principal:
        """Verify an access token locally and return its ``Principal``.

        HS256 tokens are checked with ``SUPABASE_JWT_SECRET``; asymmetric ones with the
        project's JWKS (cached; refetched once when the token names an unknown ``kid``).
        Without a JWT secret, an HS256 token is checked by the auth server instead
        (``GET /auth/v1/user``, one request per call) and its claims locally.
        Raises ``errors.AuthError`` on an expired, tampered, unsigned or wrong-audience token.
        """
        settings = self._core.settings
        aud = settings.jwt_audience if audience == "default" else audience
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        alg = token_header(token).get("alg")
        if alg == "HS256" and not secret:
            principal = verify_token(token, secret=None, jwks=None, audience=aud, signature_checked_elsewhere=True)
            with boundary():
                user = await self._core.auth_client().get_user(token)
            if user is None or str(principal.user_id) != user.user.id:
                raise errors.AuthError("the auth server did not accept this token", code="bad_jwt", status=401)
            return principal
        jwks: dict[str, Any] | None = None
        if alg in ASYMMETRIC_ALGS:
            if not self._jwks.fresh():
                await self._fetch_jwks()
            jwks = self._jwks.keys
        try:
            return verify_token(token, secret=secret, jwks=jwks, audience=aud)
        except UnknownKey:
            if not self._jwks.may_refetch():
                raise errors.AuthError("token signed by an unknown key", code="bad_jwt", status=401) from None
        await self._fetch_jwks()
        try:
            return verify_token(token, secret=secret, jwks=self._jwks.keys, audience=aud)
        except UnknownKey:
            raise errors.AuthError("token signed by an unknown key", code="bad_jwt", status=401) from None

    async def _fetch_jwks(self) -> None:
        settings = self._core.settings
        with boundary():
            response = await self._core.http.get(
                settings.resolved_jwks_url, headers={"apikey": settings.anon_key.get_secret_value()}
            )
            response.raise_for_status()
            data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise errors.UnexpectedResponse("the JWKS endpoint did not return a key set", code="bad_jwks")
        self._jwks.store(data)


def _session(response: AuthResponse) -> Session:
    if response.session is None:
        raise errors.AuthError("the server returned no session", code="session_missing")
    return response.session


def _session_or_confirmation(response: AuthResponse) -> Session:
    if response.session is None:
        user_id = response.user.id if response.user is not None else None
        raise errors.ConfirmationRequired(
            "the account was created and must be confirmed before signing in", user_id=user_id
        )
    return response.session
