"""Auth: ``app.auth`` (``Auth`` / ``AsyncAuth``), sessions, and server-side ``verify`` -> ``Principal``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from supabase_auth.types import Session, User

from appkit.auth.jwt import Principal, verify_token

if TYPE_CHECKING:
    from appkit._async.auth import AsyncAuth, OAuthStart
    from appkit._sync.auth import Auth

# The services import appkit.auth.jwt; loading them lazily keeps that import acyclic
# whichever module a program imports first.
_LAZY = {"AsyncAuth": "appkit._async.auth", "OAuthStart": "appkit._async.auth", "Auth": "appkit._sync.auth"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'appkit.auth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["AsyncAuth", "Auth", "OAuthStart", "Principal", "Session", "User", "verify_token"]
