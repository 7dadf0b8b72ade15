"""A Supabase Auth (GoTrue) compatible service for the local stack, mounted at ``/auth/v1``.

Users, identities, sessions, refresh tokens and MFA factors live in Supabase's ``auth``
tables (so triggers on ``auth.users`` fire as on Supabase); outgoing e-mail and SMS are
captured in ``_appkit.auth_messages`` (see :func:`appkit.local.auth.mail.list_messages`).
"""

from __future__ import annotations

from appkit.local.auth.mail import list_messages
from appkit.local.auth.service import AuthService
from appkit.local.context import StackContext


def create_service(ctx: StackContext) -> AuthService:
    return AuthService(ctx)


__all__ = ["AuthService", "create_service", "list_messages"]
