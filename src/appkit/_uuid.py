"""Reading a UUID the caller passed (a user's, an organization's, a row's id) for the SDK's input checks."""

from __future__ import annotations

from uuid import UUID


def parse_uuid(value: object) -> UUID | None:
    """``value`` as a UUID when it is one or a string spelling one; None for anything else.

    Callers raise their own ``ValidationError`` on None, with the message and code of their API."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return None
    return None
