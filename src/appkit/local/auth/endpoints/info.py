"""Health, public settings, the JWKS and the captured-messages endpoint."""

from __future__ import annotations

from starlette.responses import Response

from appkit.local.auth import mail
from appkit.local.auth.endpoints.base import EndpointBase
from appkit.local.auth.errors import bad_request
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.providers import PROVIDERS, configured_providers

VERSION = "v2.180.0-appkit"


class InfoEndpoints(EndpointBase):
    """Health, settings, JWKS and captured messages."""

    async def health(self, req: AuthRequest) -> Response:
        return ok({"version": VERSION, "name": "GoTrue",
                   "description": "GoTrue is a user registration and authentication API"})

    async def settings(self, req: AuthRequest) -> Response:
        external: dict[str, bool] = {name: False for name in PROVIDERS}
        for name, conf in configured_providers(self.cfg).items():
            external[name] = bool(conf.get("enabled"))
        external.update({"anonymous_users": self.cfg.enable_anonymous_sign_ins,
                         "email": self.cfg.email.enable_signup, "phone": self.cfg.sms.enable_signup})
        return ok({
            "external": external,
            "disable_signup": not self.cfg.enable_signup,
            "mailer_autoconfirm": not self.cfg.email.enable_confirmations,
            "phone_autoconfirm": not self.cfg.sms.enable_confirmations,
            "sms_provider": "twilio",
            "saml_enabled": False,
        })

    async def jwks(self, req: AuthRequest) -> Response:
        return ok(self.keys.jwks(), headers={"Cache-Control": "public, max-age=600"})

    async def messages(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        try:
            limit = int(req.query.get("limit", "100"))
        except ValueError:
            raise bad_request("validation_failed", "limit must be an integer") from None
        recipient = req.query.get("email") or req.query.get("phone") or req.query.get("recipient")
        async with self.pool.connection() as conn:
            items = await mail.list_messages_async(conn, recipient, req.query.get("type"), max(1, min(limit, 1000)))
        return ok({"messages": items})
