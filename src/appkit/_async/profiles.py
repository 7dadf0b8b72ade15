"""``app.profiles``: the caller's own profile and the profiles of their organizations' members."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from appkit import errors
from appkit._async.caller import caller_id
from appkit._async.scope import AsyncScope
from appkit._async.table import AsyncTable
from appkit.profiles.models import Profile, check_avatar_url, check_display_name, check_metadata, check_user_id


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class AsyncProfiles:
    """Profiles as RLS lets the caller see them: their own, and their co-members' (read only)."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope
        self._table = AsyncTable(scope, Profile)

    async def me(self) -> Profile:
        """The signed-in user's profile."""
        return await self._table.get(str(await caller_id(self._scope, "profiles.me")))

    async def get(self, user_id: UUID | str) -> Profile:
        """A profile the caller may read (``errors.NotFound`` when missing or hidden)."""
        return await self._table.get(str(check_user_id(user_id)))

    async def update_me(self, *, display_name: str | None = UNSET, avatar_url: str | None = UNSET,
                        metadata: dict[str, Any] = UNSET) -> Profile:
        """Change the given fields of the caller's profile (``None`` clears a name or avatar)."""
        changes: dict[str, Any] = {}
        if display_name is not UNSET:
            changes["display_name"] = check_display_name(display_name)
        if avatar_url is not UNSET:
            changes["avatar_url"] = check_avatar_url(avatar_url)
        if metadata is not UNSET:
            changes["metadata"] = check_metadata(metadata)
        if not changes:
            raise errors.ValidationError("update_me needs at least one field to change", code="invalid_profile")
        me = await caller_id(self._scope, "profiles.update_me")
        return await self._table.update(str(me), **changes)
