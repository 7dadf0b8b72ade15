"""Notification values: the row model and the checks applied before sending."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from appkit import errors
from appkit._uuid import parse_uuid
from appkit.model import Model

_KIND = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
ROLES = ("owner", "admin", "member", "viewer")
MAX_IDS = 1000


class Notification(Model, table="notifications", schema="appkit"):
    """One notification (``appkit.notifications``); ``read_at`` is None while unread."""

    id: UUID
    user_id: UUID
    org_id: UUID | None = None
    kind: str = "info"
    title: str
    body: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    sent_by: UUID | None = None
    read_at: datetime | None = None
    created_at: datetime | None = None


def uuid_of(value: object, what: str) -> UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise errors.ValidationError(f"{what} must be a UUID, not {value!r}"[:200], code="invalid_notification")
    return parsed


def check_message(title: object, body: object, data: object, kind: object) -> dict[str, Any]:
    """The validated ``title``, ``body``, ``data``, ``kind`` as RPC parameters."""
    if not isinstance(title, str) or not 1 <= len(title) <= 200 or "\x00" in title:
        raise errors.ValidationError("title must be 1 to 200 characters", code="invalid_notification")
    if body is not None and (not isinstance(body, str) or len(body) > 10000 or "\x00" in body):
        raise errors.ValidationError("body must be a string of at most 10000 characters", code="invalid_notification")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.ValidationError("data must be a dict (a JSON object)", code="invalid_notification")
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(f"data is not JSON-serialisable: {exc}", code="invalid_notification") from None
    if len(text.encode()) > 16384 or "\\u0000" in text:
        raise errors.ValidationError("data must be at most 16384 bytes of JSON without NUL",
                                     code="invalid_notification")
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise errors.ValidationError("kind must be 1-64 of lowercase letters, digits, _ . : - (e.g. 'invoice.paid')",
                                     code="invalid_notification")
    return {"title": title, "body": body, "data": data, "kind": kind}


def check_ids(ids: object) -> list[str]:
    if isinstance(ids, (str, bytes, UUID)) or not isinstance(ids, Sequence):
        raise errors.ValidationError("ids must be a list of notification ids", code="invalid_notification")
    if not ids or len(ids) > MAX_IDS:
        raise errors.ValidationError(f"ids must hold 1 to {MAX_IDS} ids", code="invalid_notification")
    return [str(uuid_of(i, "each id")) for i in ids]


def check_role(role: object) -> str:
    if role not in ROLES:
        raise errors.ValidationError(f"min_role must be one of {', '.join(ROLES)}", code="invalid_notification")
    return str(role)


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise errors.ValidationError("limit must be an integer from 1 to 1000", code="invalid_notification")
    return limit


def check_flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise errors.ValidationError(f"{what} must be True or False", code="invalid_notification")
    return value
