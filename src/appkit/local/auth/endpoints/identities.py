"""Identity linking (``/user/identities``) and the SSO endpoints, as GoTrue answers them here.

Linking a third-party identity starts like ``/authorize`` (the provider cannot complete it
offline, see ``oauth.py``); unlinking removes one of the caller's identities with GoTrue's
rules. SAML is never configured locally, so the SSO endpoints answer what GoTrue answers
with SAML disabled, and the admin SSO provider API finds no providers.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.rows import dict_row
from starlette.responses import RedirectResponse, Response

from appkit.local.auth.endpoints.oauth import OAuthEndpoints
from appkit.local.auth.errors import GoTrueError, not_found, unprocessable
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import is_uuid
from appkit.local.auth.users import audit


def _manual_linking_disabled() -> GoTrueError:
    return not_found("manual_linking_disabled", "Manual linking is disabled")


def _saml_disabled() -> GoTrueError:
    return not_found("saml_provider_disabled", "SAML 2.0 is disabled")


class IdentityEndpoints(OAuthEndpoints):
    """``GET /user/identities/authorize``, ``DELETE /user/identities/{identity_id}``, ``/sso*``
    and ``/admin/sso/providers*``."""

    async def link_identity(self, req: AuthRequest) -> Response:
        if not self.cfg.enable_manual_linking:
            raise _manual_linking_disabled()
        async with self.pool.connection() as conn:
            _, user = await self._current(req, conn)
        url = await self._provider_url(req, linking_target=str(user["id"]))
        if req.query.get("skip_http_redirect") == "true":
            return ok({"url": url})
        return RedirectResponse(url, status_code=302)

    async def unlink_identity(self, req: AuthRequest) -> Response:
        if not self.cfg.enable_manual_linking:
            raise _manual_linking_disabled()
        identity_id = req.request.path_params["identity_id"]
        if not is_uuid(identity_id):
            raise not_found("validation_failed", "identity_id must be an UUID")
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn, lock=True)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "select id, provider, provider_id, identity_data from auth.identities where user_id = %s"
                    " order by created_at, id", (user["id"],))
                identities: list[dict[str, Any]] = await cur.fetchall()
            if len(identities) <= 1:
                raise unprocessable("single_identity_not_deletable",
                                    "User must have at least 1 identity after unlinking")
            target = next((i for i in identities if str(i["id"]) == identity_id.lower()), None)
            if target is None:
                raise unprocessable("identity_not_found", "Identity doesn't exist")
            await conn.execute("delete from auth.identities where id = %s", (target["id"],))
            remaining = [i for i in identities if i is not target]
            if target["provider"] == "phone":
                await conn.execute("update auth.users set phone = null, phone_confirmed_at = null,"
                                   " updated_at = now() where id = %s", (user["id"],))
            else:
                # the user's e-mail follows the identities left (GoTrue's UpdateUserEmailFromIdentities)
                emails = [str((i["identity_data"] or {}).get("email") or "") for i in remaining]
                emails = [e for e in emails if e]
                if user["email"] and user["email"] not in emails:
                    await conn.execute(
                        "update auth.users set email = %s, email_confirmed_at = case when %s::text is null"
                        " then null else email_confirmed_at end, updated_at = now() where id = %s",
                        (emails[0] if emails else None, emails[0] if emails else None, user["id"]))
            providers = list(dict.fromkeys(str(i["provider"]) for i in remaining))
            await conn.execute(
                "update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}')"
                " || jsonb_build_object('providers', %s::jsonb), updated_at = now() where id = %s",
                (json.dumps(providers), user["id"]))
            await audit(conn, "identity_unlinked", user, req.ip, identity_id=str(target["id"]),
                        provider=str(target["provider"]), provider_id=str(target["provider_id"]))
        return ok({})

    # -- SSO: SAML is never enabled locally ------------------------------------------------------------
    async def sso(self, req: AuthRequest) -> Response:
        raise _saml_disabled()

    async def admin_sso_providers(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        if req.request.method == "GET":
            return ok({"items": []})
        raise _saml_disabled()  # a provider needs SAML, which the local stack cannot enable

    async def admin_sso_provider(self, req: AuthRequest) -> Response:
        self._require_admin(req)
        raise not_found("sso_provider_not_found", "SSO Identity Provider not found")
