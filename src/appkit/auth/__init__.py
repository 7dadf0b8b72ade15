"""Auth: ``app.auth`` (``Auth`` / ``AsyncAuth``), sessions, and server-side ``verify`` -> ``Principal``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supabase_auth.types import Session, User

from appkit._lazy import lazy_getattr
from appkit.auth.jwt import Principal, verify_token

if TYPE_CHECKING:
    from appkit._async.auth import AsyncAuth, OAuthStart
    from appkit._sync.auth import Auth

# The services import appkit.auth.jwt; loading them lazily keeps that import acyclic
# whichever module a program imports first.
_LAZY = {"AsyncAuth": "appkit._async.auth", "OAuthStart": "appkit._async.auth", "Auth": "appkit._sync.auth"}


__getattr__ = lazy_getattr("appkit.auth", _LAZY, globals())


__all__ = ["AsyncAuth", "Auth", "OAuthStart", "Principal", "Session", "User", "verify_token"]
