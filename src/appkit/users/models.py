"""Typed results and input checks of the users admin service (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from supabase_auth.types import Factor, User

from appkit import errors
from appkit._uuid import parse_uuid

LinkType = Literal["signup", "invite", "magiclink", "recovery", "email_change_current", "email_change_new"]
LINK_TYPES: tuple[str, ...] = ("signup", "invite", "magiclink", "recovery", "email_change_current",
                               "email_change_new")

# GoTrue has no "forever": a ban of ~100 years is what its docs suggest for a permanent one.
BAN_FOREVER = "876000h"

_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")


@dataclass(frozen=True)
class UserPage:
    """One page of ``users.list``: ``total`` users match; ``next_page`` is None on the last page."""

    users: list[User]
    total: int
    page: int
    per_page: int

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page * self.per_page < self.total else None


@dataclass(frozen=True)
class GeneratedLink:
    """An action link made without sending anything: give ``action_link`` (or ``email_otp``) to the user."""

    user: User
    action_link: str
    email_otp: str
    hashed_token: str
    redirect_to: str | None
    verification_type: str


def user_id(value: object) -> str:
    """``value`` as a canonical UUID string, or ``errors.ValidationError``."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise errors.ValidationError(f"invalid user id {value!r}: expected a UUID", code="validation_failed")
    return str(parsed)


def go_duration(value: str | timedelta) -> str:
    """A ban duration in GoTrue's (Go's) syntax: ``"24h"``, ``"90m"``, ``"1h30m"``; a timedelta becomes seconds."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        if seconds < 1:
            raise errors.ValidationError("a ban must last at least one second", code="validation_failed")
        return f"{seconds}s"
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        raise errors.ValidationError(f"invalid duration {value!r}: use e.g. 24h, 90m, 1h30m",
                                     code="validation_failed")
    if not re.search(r"[1-9]", value):
        raise errors.ValidationError("a ban must last longer than zero", code="validation_failed")
    return value


__all__ = ["BAN_FOREVER", "LINK_TYPES", "Factor", "GeneratedLink", "LinkType", "User", "UserPage", "go_duration",
           "user_id"]
