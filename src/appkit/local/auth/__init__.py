"""A Supabase Auth (GoTrue) compatible service for the local stack, mounted at ``/auth/v1``.

Users, identities, sessions, refresh tokens and MFA factors live in Supabase's ``auth``
tables (so triggers on ``auth.users`` fire as on Supabase); outgoing e-mail and SMS are
captured in ``_appkit.auth_messages`` (see :func:`appkit.local.auth.mail.list_messages`).
The service loads on first use, so reading captured mail does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.local.auth.mail import list_messages

if TYPE_CHECKING:
    from appkit.local.auth.service import AuthService, create_service

__getattr__ = lazy_getattr(
    "appkit.local.auth",
    {"AuthService": "appkit.local.auth.service", "create_service": "appkit.local.auth.service"},
    globals(),
)

__all__ = ["AuthService", "create_service", "list_messages"]
