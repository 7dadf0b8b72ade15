"""Notifications: per-user messages in ``appkit.notifications``, live over Realtime; ``app.notifications``.

.. code-block:: python

    app.admin.notifications.send(user_id, title="Invoice paid", data={"invoice": 42})
    me = app.as_user(session)
    async with me.notifications.stream() as feed:     # only this user's, RLS on the change feed
        async for change in feed:
            print(change.new.title)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.notifications.models import Notification

if TYPE_CHECKING:
    from appkit._async.notifications import AsyncNotifications
    from appkit._sync.notifications import Notifications

__getattr__ = lazy_getattr("appkit.notifications", {"AsyncNotifications": "appkit._async.notifications",
                                                    "Notifications": "appkit._sync.notifications"}, globals())

__all__ = ["AsyncNotifications", "Notification", "Notifications"]
