"""Typed models of appkit's organizations: ``Role``, ``Organization``, ``Membership``, ``Invitation``."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from appkit import errors

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
PERMISSION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Role(StrEnum):
    """Organization roles, highest first: owner > admin > member > viewer."""

    owner = "owner"
    admin = "admin"
    member = "member"
    viewer = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    def includes(self, other: Role | str) -> bool:
        """True when this role is ``other`` or ranks above it."""
        return self.rank >= as_role(other).rank

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        return as_role(value)


_RANK = {"owner": 40, "admin": 30, "member": 20, "viewer": 10}


def as_role(value: Role | str) -> Role:
    """``value`` as a ``Role``; ``errors.ValidationError`` for anything else."""
    if isinstance(value, Role):
        return value
    if isinstance(value, str) and value in _RANK:
        return Role(value)
    raise errors.ValidationError(f"unknown organization role {value!r}: use owner, admin, member or viewer",
                                 code="invalid_role")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Organization(_Row):
    """An organization; ``role`` is the caller's own role in it where known (``mine()``)."""

    id: UUID
    name: str
    slug: str
    metadata: dict[str, Any] = {}
    created_by: UUID | None = None
    created_at: datetime
    updated_at: datetime
    role: Role | None = None


class Membership(_Row):
    """A user's membership of an organization (``email`` where the server returned it)."""

    org_id: UUID | None = None
    user_id: UUID
    role: Role
    created_at: datetime
    email: str | None = None


class Invitation(_Row):
    """An invitation. ``token`` is set only on the one ``invite()`` returns; the server keeps a hash."""

    id: UUID
    org_id: UUID
    role: Role
    email: str | None = None
    invited_by: UUID | None = None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    accepted_by: UUID | None = None
    revoked_at: datetime | None = None
    token: str | None = None
    emailed: bool = False

    @property
    def status(self) -> str:
        """``pending``, ``accepted``, ``revoked`` or ``expired`` (as of now)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.accepted_at is not None:
            return "accepted"
        if self.expires_at <= datetime.now(self.expires_at.tzinfo):
            return "expired"
        return "pending"


class InvitationPreview(_Row):
    """What ``lookup_invitation`` shows a token holder before accepting."""

    id: UUID
    org_id: UUID
    org_name: str
    org_slug: str
    role: Role
    email: str | None = None
    expires_at: datetime
    status: str
