"""The GoTrue-compatible auth service (mounted at ``/auth/v1``): composes the endpoint
families of :mod:`appkit.local.auth.endpoints` behind one route table.

Where each endpoint lives: ``endpoints/info.py`` (``/health``, ``/settings``, JWKS),
``sessions.py`` (``/signup``, ``/token``, ``/logout``), ``user.py`` (``/user``,
``/reauthenticate``), ``otp.py`` (``/otp``, ``/magiclink``, ``/recover``, ``/resend``,
``/verify``), ``oauth.py`` (``/authorize``, ``/callback``), ``identities.py``
(``/user/identities``, ``/sso``, ``/admin/sso``), ``oauth_clients.py`` (``/admin/oauth/clients``),
``mfa.py`` (``/factors``),
``admin.py`` (``/admin/*``, ``/invite``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from appkit.local.auth.batch import Coalescer
from appkit.local.auth.endpoints.admin import AdminEndpoints
from appkit.local.auth.endpoints.identities import IdentityEndpoints
from appkit.local.auth.endpoints.info import InfoEndpoints
from appkit.local.auth.endpoints.mfa import MfaEndpoints
from appkit.local.auth.endpoints.oauth_clients import OAuthClientEndpoints
from appkit.local.auth.endpoints.otp import OtpEndpoints
from appkit.local.auth.endpoints.sessions import REFRESH_WORKERS, SessionEndpoints
from appkit.local.auth.endpoints.user import UserEndpoints
from appkit.local.auth.http import ExactRoutes, Handler, error_boundary
from appkit.local.context import StackContext

#: paths that answer without an API key
OPEN_PATHS = ("/verify", "/callback", "/authorize", "/health", "/.well-known/jwks.json", "/sso/saml/acs",
              "/sso/saml/metadata")


class AuthService(InfoEndpoints, SessionEndpoints, UserEndpoints, OtpEndpoints, IdentityEndpoints, MfaEndpoints,
                  AdminEndpoints, OAuthClientEndpoints):
    """The endpoint families behind exact-path routing (a Starlette router for paths with
    parameters), each endpoint wrapped in the API-key check and the error boundary."""

    name = "auth"

    def __init__(self, ctx: StackContext) -> None:
        super().__init__(ctx)
        self._refresh_batches = Coalescer(self._refresh_many, workers=REFRESH_WORKERS, max_batch=64)
        r: list[tuple[str, Handler, list[str]]] = [
            ("/health", self.health, ["GET"]),
            ("/settings", self.settings, ["GET"]),
            ("/.well-known/jwks.json", self.jwks, ["GET"]),
            ("/signup", self.signup, ["POST"]),
            ("/token", self.token, ["POST"]),
            ("/logout", self.logout, ["POST"]),
            ("/user", self.get_user, ["GET"]),
            ("/user", self.update_user, ["PUT"]),
            ("/recover", self.recover, ["POST"]),
            ("/otp", self.otp, ["POST"]),
            ("/magiclink", self.magiclink, ["POST"]),
            ("/resend", self.resend, ["POST"]),
            ("/verify", self.verify_get, ["GET"]),
            ("/verify", self.verify_post, ["POST"]),
            ("/reauthenticate", self.reauthenticate, ["GET", "POST"]),
            ("/authorize", self.authorize, ["GET"]),
            ("/user/identities/authorize", self.link_identity, ["GET"]),
            ("/user/identities/{identity_id}", self.unlink_identity, ["DELETE"]),
            ("/sso", self.sso, ["POST"]),
            ("/sso/saml/metadata", self.sso, ["GET"]),
            ("/sso/saml/acs", self.sso, ["POST"]),
            ("/admin/oauth/clients", self.oauth_clients, ["GET", "POST"]),
            ("/admin/oauth/clients/{client_id}", self.oauth_client, ["GET", "PUT", "DELETE"]),
            ("/admin/oauth/clients/{client_id}/regenerate_secret", self.oauth_client_regenerate_secret, ["POST"]),
            ("/admin/sso/providers", self.admin_sso_providers, ["GET", "POST"]),
            ("/admin/sso/providers/{idp_id}", self.admin_sso_provider, ["GET", "PUT", "DELETE"]),
            ("/callback", self.callback, ["GET", "POST"]),
            ("/factors", self.factor_enroll, ["POST"]),
            ("/factors/{factor_id}/challenge", self.factor_challenge, ["POST"]),
            ("/factors/{factor_id}/verify", self.factor_verify, ["POST"]),
            ("/factors/{factor_id}", self.factor_unenroll, ["DELETE"]),
            ("/invite", self.invite, ["POST"]),
            ("/admin/users", self.admin_list_users, ["GET"]),
            ("/admin/users", self.admin_create_user, ["POST"]),
            ("/admin/users/{user_id}", self.admin_get_user, ["GET"]),
            ("/admin/users/{user_id}", self.admin_update_user, ["PUT"]),
            ("/admin/users/{user_id}", self.admin_delete_user, ["DELETE"]),
            ("/admin/users/{user_id}/factors", self.admin_list_factors, ["GET"]),
            ("/admin/users/{user_id}/factors/{factor_id}", self.admin_delete_factor, ["DELETE"]),
            ("/admin/generate_link", self.admin_generate_link, ["POST"]),
            ("/_appkit/messages", self.messages, ["GET"]),
        ]
        endpoints = [(p, error_boundary(p, h, None if p in OPEN_PATHS else self._check_apikey), m) for p, h, m in r]
        self.app = ExactRoutes(
            {(method, p): e for p, e, m in endpoints if "{" not in p for method in m},
            Starlette(routes=[Route(p, e, methods=m) for p, e, m in endpoints]),
        )

    async def startup(self) -> None:
        # synchronous_commit=off: a commit returns before its WAL is on disk (the WAL writer
        # flushes it within 200 ms). A crash of the machine or of Postgres in that window can
        # lose the latest sessions/token rotations (their users sign in again) but never
        # corrupts; in exchange every auth write costs ~0.15 ms less CPU and ~0.4 ms less time.
        # Only the auth service's own connections: data written through REST keeps the
        # server's setting.
        self._pool = await self.ctx.pool("auth", user="supabase_auth_admin", max_size=6,
                                         options="-c TimeZone=UTC -c synchronous_commit=off")

    async def shutdown(self) -> None:
        self._pool = None
        await self.tokens.hooks.close()


def create_service(ctx: StackContext) -> AuthService:
    return AuthService(ctx)
