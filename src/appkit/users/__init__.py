"""Users: ``app.admin.users`` (``Users`` / ``AsyncUsers``), the auth admin API, and its typed results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.users.models import BAN_FOREVER, Factor, GeneratedLink, LinkType, User, UserPage, go_duration

if TYPE_CHECKING:
    from appkit._async.users import AsyncUsers
    from appkit._sync.users import Users

# the services import appkit.users.models; loading them lazily keeps that import acyclic
_LAZY = {"AsyncUsers": "appkit._async.users", "Users": "appkit._sync.users"}

__getattr__ = lazy_getattr("appkit.users", _LAZY, globals())

__all__ = [
    "BAN_FOREVER",
    "AsyncUsers",
    "Factor",
    "GeneratedLink",
    "LinkType",
    "User",
    "UserPage",
    "Users",
    "go_duration",
]
