"""Third-party sign-in: ``/authorize`` redirects to the provider, ``/callback`` answers."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import jwt as pyjwt
from starlette.responses import RedirectResponse, Response

from appkit.local.auth.endpoints.base import EndpointBase
from appkit.local.auth.errors import bad_request
from appkit.local.auth.http import AuthRequest
from appkit.local.auth.inputs import redirect_allowed
from appkit.local.auth.otp import create_flow_state, pkce_params
from appkit.local.auth.providers import PROVIDERS, configured_providers


class OAuthEndpoints(EndpointBase):
    """The OAuth redirect endpoints."""

    async def authorize(self, req: AuthRequest) -> Response:
        return RedirectResponse(await self._provider_url(req), status_code=302)

    async def _provider_url(self, req: AuthRequest, linking_target: str | None = None) -> str:
        """The provider's authorization URL (GoTrue's GetExternalProviderRedirectURL); with
        ``linking_target`` the state names the user the identity is to be linked to."""
        provider = req.query.get("provider", "")
        if not provider:
            raise bad_request("validation_failed", "Unsupported provider: provider is required")
        conf = configured_providers(self.cfg).get(provider)
        if provider not in PROVIDERS and conf is None:
            raise bad_request("validation_failed", f"Unsupported provider: Provider {provider} could not be found")
        if conf is None or not conf.get("enabled"):
            raise bad_request("provider_disabled", f"Unsupported provider: Provider {provider} is not enabled")
        default_url, default_scopes = PROVIDERS.get(provider, ("", ""))
        base = str(conf.get("url") or "").rstrip("/")
        auth_url = f"{base}/protocol/openid-connect/auth" if provider == "keycloak" and base else default_url
        if not auth_url:
            raise bad_request("validation_failed", f"Unsupported provider: Provider {provider} needs a url")
        redirect = self._redirect_to(req)
        challenge = req.query.get("code_challenge", "")
        method = req.query.get("code_challenge_method", "").lower()
        flow_id = None
        if challenge:
            pkce = pkce_params({"code_challenge": challenge, "code_challenge_method": method})
            assert pkce is not None
            async with self.pool.connection() as conn, conn.transaction():
                flow_id = await create_flow_state(conn, None, pkce, provider, "oauth")
        state_claims = {"exp": int(time.time()) + 300, "provider": provider, "referrer": redirect,
                        "flow_state_id": flow_id or "", "site_url": self.cfg.site_url}
        if linking_target is not None:
            state_claims["linking_target_id"] = linking_target
        state = pyjwt.encode(state_claims, self.keys.secret, algorithm="HS256")
        scopes = " ".join(s for s in (default_scopes, req.query.get("scopes", "")) if s)
        params = {"client_id": str(conf.get("client_id") or ""),
                  "redirect_uri": str(conf.get("redirect_uri") or f"{self.issuer}/callback"),
                  "response_type": "code", "scope": scopes, "state": state}
        return f"{auth_url}?{urlencode(params)}"

    async def callback(self, req: AuthRequest) -> Response:
        state = req.query.get("state", "")
        target = self.cfg.site_url
        try:
            claims = pyjwt.decode(state, self.keys.secret, algorithms=["HS256"])
            target = redirect_allowed(self.cfg, str(claims.get("referrer") or ""))
        except pyjwt.PyJWTError:
            pass
        params = {"error": "server_error", "error_code": "provider_unreachable",
                  "error_description": "The local stack cannot exchange OAuth codes with external providers"}
        return RedirectResponse(f"{target}#{urlencode(params)}", status_code=303)
