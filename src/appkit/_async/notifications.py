"""``app.notifications``: send, list, count, mark read, delete and stream the caller's notifications."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.model import col
from appkit.notifications.models import (
    Notification,
    check_flag,
    check_ids,
    check_limit,
    check_message,
    check_role,
    uuid_of,
)
from appkit.realtime import AsyncRealtime, AsyncSubscription, Change


class AsyncNotifications:
    """A user's notifications (RLS: their own); the service role or an org admin sends them."""

    def __init__(self, scope: AsyncScope, realtime: Callable[[], AsyncRealtime]) -> None:
        self._scope = scope
        self._realtime = realtime

    async def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        return await self._scope.rpc("appkit", function, params)

    async def send(self, user_id: UUID | str, *, title: str, body: str | None = None,
                   data: dict[str, Any] | None = None, org_id: UUID | str | None = None,
                   kind: str = "info", email: bool = False) -> Notification:
        """Notify one user. The service role may notify anyone; an org admin a member of ``org_id``.
        ``email=True`` also queues an e-mail (delivered by ``appkit.notifications.email``'s job handler)."""
        params = {"user_id": str(uuid_of(user_id, "user_id")), **check_message(title, body, data, kind),
                  "org_id": str(uuid_of(org_id, "org_id")) if org_id is not None else None,
                  "email": check_flag(email, "email")}
        row = await self._rpc("send_notification", params)
        with boundary():
            return Notification.model_validate(row)

    async def send_to_org(self, org_id: UUID | str, *, title: str, body: str | None = None,
                          data: dict[str, Any] | None = None, kind: str = "info", min_role: str = "viewer",
                          include_sender: bool = False, email: bool = False) -> int:
        """Notify every member of an org at ``min_role`` or above (service role, or an admin of the org).
        Returns how many were sent; ``email=True`` also queues an e-mail to each."""
        params = {"org_id": str(uuid_of(org_id, "org_id")), **check_message(title, body, data, kind),
                  "min_role": check_role(min_role), "include_sender": check_flag(include_sender, "include_sender"),
                  "email": check_flag(email, "email")}
        return _int(await self._rpc("notify_org", params), "notify_org")

    async def list(self, *, unread_only: bool = False, org_id: UUID | str | None = None, kind: str | None = None,
                   user_id: UUID | str | None = None, limit: int = 50) -> builtins.list[Notification]:
        """Newest first. A user sees only their own; the service role may filter by ``user_id``."""
        limit = check_limit(limit)
        client = await self._scope.rest("appkit")
        q = client.from_("notifications").select("*")
        if unread_only:
            q = q.is_("read_at", "null")
        if org_id is not None:
            q = q.eq("org_id", str(uuid_of(org_id, "org_id")))
        if kind is not None:
            q = q.eq("kind", check_message("t", None, None, kind)["kind"])
        if user_id is not None:
            q = q.eq("user_id", str(uuid_of(user_id, "user_id")))
        with boundary():
            rows = (await q.order("created_at", desc=True).order("id").limit(limit).execute()).data
            return [Notification.model_validate(r) for r in rows]

    async def unread_count(self, *, org_id: UUID | str | None = None) -> int:
        """How many of the caller's notifications are unread."""
        client = await self._scope.rest("appkit")
        q = client.from_("notifications").select("id", count="exact", head=True).is_("read_at", "null")  # type: ignore[arg-type]
        if org_id is not None:
            q = q.eq("org_id", str(uuid_of(org_id, "org_id")))
        with boundary():
            response = await q.execute()
        return _int(response.count, "unread_count")

    async def mark_read(self, ids: Sequence[UUID | str]) -> int:
        """Mark these of the caller's notifications read; returns how many changed."""
        return _int(await self._rpc("mark_notifications_read", {"ids": check_ids(ids)}), "mark_read")

    async def mark_all_read(self) -> int:
        """Mark every unread notification of the caller read; returns how many changed."""
        return _int(await self._rpc("mark_notifications_read", {"ids": None}), "mark_all_read")

    async def delete(self, ids: Sequence[UUID | str]) -> int:
        """Delete these of the caller's notifications; returns how many were deleted."""
        wanted = check_ids(ids)
        client = await self._scope.rest("appkit")
        with boundary():
            response = await client.from_("notifications").delete().in_("id", wanted).execute()
        return len(response.data or [])

    def stream(self) -> AsyncSubscription[Change[Notification]]:
        """New notifications of the signed-in user as they arrive (``change.new`` is the
        ``Notification``); ``async with`` subscribes. RLS keeps other users' rows off the feed."""
        if self._scope.role == "anon":
            raise errors.AuthError("notifications.stream needs a signed-in user", code="not_a_user")
        where = None
        if self._scope.role == "user":
            me = _sub_of(self._scope)
            where = col(Notification.user_id).eq(me) if me is not None else None
        return self._realtime().changes(Notification, events="INSERT", where=where)


def _sub_of(scope: AsyncScope) -> UUID | None:
    session = scope.session
    if session is not None and session.user is not None:
        return UUID(session.user.id)
    return None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.UnexpectedResponse(f"{what}: the server answered {type(value).__name__}, not an integer",
                                        code="unexpected_response")
    return value

