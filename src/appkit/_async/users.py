"""Users admin service (``app.admin.users``) over the official ``supabase_auth`` admin client.

Every call runs with the service-role key, so only a server may use it. Unknown users
raise ``errors.NotFound``, malformed ids and durations ``errors.ValidationError`` before any
request is made, and the server's own refusals keep its ``code`` (``email_exists`` ->
``errors.Conflict``, ``weak_password`` -> ``errors.ValidationError``, ...).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import jwt
from supabase_auth import AsyncGoTrueAdminAPI
from supabase_auth.types import Factor, Session, User, UserList, UserResponse

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.users.models import BAN_FOREVER, LINK_TYPES, GeneratedLink, LinkType, UserPage, go_duration, user_id

MAX_PER_PAGE = 1000


class AsyncUsers:
    """List, create, change, ban, sign out and delete users; manage their MFA factors."""

    def __init__(self, scope: AsyncScope) -> None:
        if scope.role != "service_role":
            raise errors.PermissionDenied("managing users needs the service role: use app.admin.users",
                                          code="not_admin")
        self._scope = scope
        self._core = scope.core

    def _admin(self) -> AsyncGoTrueAdminAPI:
        key = self._scope.apikey
        return AsyncGoTrueAdminAPI(url=self._core.settings.auth_url,
                                   headers={"apikey": key, "Authorization": f"Bearer {key}"},
                                   http_client=self._core.http)

    # reads -------------------------------------------------------------------
    async def list(self, *, page: int = 1, per_page: int = 50, filter: str | None = None) -> UserPage:
        """One page of users, newest first; ``filter`` matches part of the email, phone or name."""
        if not isinstance(page, int) or page < 1:
            raise errors.ValidationError("page must be an integer >= 1", code="validation_failed")
        if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
            raise errors.ValidationError(f"per_page must be between 1 and {MAX_PER_PAGE}", code="validation_failed")
        query = httpx.QueryParams(page=page, per_page=per_page)
        if filter:
            query = query.set("filter", filter)
        with boundary():
            response = await self._admin()._request("GET", "admin/users", query=query)
            users = UserList.model_validate_json(response.content).users
        total_header = response.headers.get("x-total-count")
        try:
            total = int(total_header) if total_header is not None else (page - 1) * per_page + len(users)
        except ValueError:
            raise errors.UnexpectedResponse(f"bad X-Total-Count header {total_header!r}",
                                            code="unexpected_response") from None
        return UserPage(users=users, total=total, page=page, per_page=per_page)

    async def get(self, user: str) -> User:
        uid = user_id(user)
        with boundary():
            return _user(await self._admin().get_user_by_id(uid))

    # writes ------------------------------------------------------------------
    async def create(self, *, email: str | None = None, phone: str | None = None, password: str | None = None,
                     password_hash: str | None = None, email_confirm: bool = False, phone_confirm: bool = False,
                     user_metadata: Mapping[str, Any] | None = None, app_metadata: Mapping[str, Any] | None = None,
                     role: str | None = None, id: str | None = None) -> User:
        """Create a user without sending anything. ``password_hash`` takes an existing bcrypt hash as it is."""
        if password is not None and password_hash is not None:
            raise errors.ValidationError("give password or password_hash, not both", code="validation_failed")
        attributes: dict[str, Any] = {"email_confirm": email_confirm, "phone_confirm": phone_confirm}
        if not email and not phone:
            raise errors.ValidationError("a user needs an email or a phone", code="validation_failed")
        _put(attributes, email=email, phone=phone, password=password, password_hash=password_hash, role=role,
             user_metadata=_dict(user_metadata), app_metadata=_dict(app_metadata),
             id=user_id(id) if id is not None else None)
        with boundary():
            return _user(await self._admin().create_user(attributes))  # type: ignore[arg-type]

    async def update(self, user: str, *, email: str | None = None, phone: str | None = None,
                     password: str | None = None, email_confirm: bool | None = None,
                     phone_confirm: bool | None = None, user_metadata: Mapping[str, Any] | None = None,
                     app_metadata: Mapping[str, Any] | None = None, role: str | None = None) -> User:
        """Change a user's attributes; metadata objects are merged into the stored ones key by key."""
        attributes: dict[str, Any] = {}
        _put(attributes, email=email, phone=phone, password=password, role=role, email_confirm=email_confirm,
             phone_confirm=phone_confirm, user_metadata=_dict(user_metadata), app_metadata=_dict(app_metadata))
        if not attributes:
            raise errors.ValidationError("nothing to update", code="validation_failed")
        return await self._update(user, attributes)

    async def _update(self, user: str, attributes: dict[str, Any]) -> User:
        uid = user_id(user)
        with boundary():
            return _user(await self._admin().update_user_by_id(uid, attributes))  # type: ignore[arg-type]

    async def set_password(self, user: str, password: str) -> User:
        if not isinstance(password, str) or not password:
            raise errors.ValidationError("the password must be a non-empty string", code="validation_failed")
        return await self._update(user, {"password": password})

    async def set_app_metadata(self, user: str, claims: Mapping[str, Any]) -> User:
        """Merge ``claims`` into ``app_metadata`` (they appear in the user's next access tokens;
        a key set to None is removed). Users cannot change app_metadata themselves."""
        if not isinstance(claims, Mapping):
            raise errors.ValidationError("claims must be a mapping", code="validation_failed")
        return await self._update(user, {"app_metadata": dict(claims)})

    async def ban(self, user: str, duration: str | timedelta = BAN_FOREVER) -> User:
        """Ban for ``duration`` (Go syntax such as ``"24h"``, or a timedelta; default ~100 years).
        A banned user cannot sign in or refresh; the server ends their sessions."""
        return await self._update(user, {"ban_duration": go_duration(duration)})

    async def unban(self, user: str) -> User:
        return await self._update(user, {"ban_duration": "none"})

    async def delete(self, user: str, *, soft: bool = False) -> None:
        """Delete a user. ``soft`` keeps an anonymised row (its id stays taken) instead of removing it."""
        uid = user_id(user)
        with boundary():
            await self._admin().delete_user(uid, should_soft_delete=soft)

    async def invite(self, email: str, *, data: Mapping[str, Any] | None = None,
                     redirect_to: str | None = None) -> User:
        """Create the user (if needed) and e-mail them an invitation link."""
        if not isinstance(email, str) or not email:
            raise errors.ValidationError("invite needs an email", code="validation_failed")
        options: dict[str, Any] = {}
        if data:
            options["data"] = dict(data)
        if redirect_to:
            options["redirect_to"] = redirect_to
        with boundary():
            return _user(await self._admin().invite_user_by_email(email, options))  # type: ignore[arg-type]

    async def generate_link(self, type: LinkType, email: str, *, password: str | None = None,
                            new_email: str | None = None, data: Mapping[str, Any] | None = None,
                            redirect_to: str | None = None) -> GeneratedLink:
        """An action link (signup, invite, magiclink, recovery, email change) without sending it."""
        if type not in LINK_TYPES:
            raise errors.ValidationError(f"invalid link type {type!r}: one of {', '.join(LINK_TYPES)}",
                                         code="validation_failed")
        if type == "signup" and not password:
            raise errors.ValidationError("a signup link needs a password", code="validation_failed")
        if type.startswith("email_change") and not new_email:
            raise errors.ValidationError("an email change link needs new_email", code="validation_failed")
        params: dict[str, Any] = {"type": type, "email": email}
        options: dict[str, Any] = {}
        if data:
            options["data"] = dict(data)
        if redirect_to:
            options["redirect_to"] = redirect_to
        if options:
            params["options"] = options
        if password:
            params["password"] = password
        if new_email:
            params["new_email"] = new_email
        with boundary():
            response = await self._admin().generate_link(params)  # type: ignore[arg-type]
        p = response.properties
        return GeneratedLink(user=response.user, action_link=p.action_link, email_otp=p.email_otp,
                             hashed_token=p.hashed_token, redirect_to=p.redirect_to,
                             verification_type=p.verification_type)

    async def sign_out(self, user: str | Session) -> None:
        """End every session of a user: their refresh tokens stop working at once (access tokens
        already issued stay valid until they expire). By user id this needs the project's JWT
        secret (``SUPABASE_JWT_SECRET``) to act as the user, as GoTrue has no admin endpoint for it."""
        if isinstance(user, Session):
            token = user.access_token
        else:
            uid = user_id(user)
            secret = self._core.settings.jwt_secret
            if secret is None:
                raise errors.ConfigError("signing a user out by id needs the JWT secret (SUPABASE_JWT_SECRET)",
                                         code="jwt_secret_missing")
            await self.get(uid)  # NotFound for an unknown user, before anything else
            now = int(time.time())
            token = jwt.encode({"sub": uid, "role": "authenticated", "aud": "authenticated", "iat": now,
                                "exp": now + 60, "aal": "aal1"}, secret.get_secret_value(), algorithm="HS256")
        with boundary():
            await self._admin().sign_out(token, "global")

    # MFA factors -------------------------------------------------------------
    async def factors(self, user: str) -> builtins.list[Factor]:
        uid = user_id(user)
        with boundary():
            return list(await self._admin().mfa.list_factors({"user_id": uid}))

    async def delete_factor(self, user: str, factor_id: str) -> None:
        uid = user_id(user)
        fid = user_id(factor_id)
        with boundary():
            await self._admin().mfa.delete_factor({"user_id": uid, "id": fid})


def _put(target: dict[str, Any], **values: Any) -> None:
    for key, value in values.items():
        if value is not None:
            target[key] = value


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise errors.ValidationError("metadata must be a mapping", code="validation_failed")
    return dict(value)


def _user(response: UserResponse) -> User:
    return response.user
