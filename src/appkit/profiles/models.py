"""Profile values: the row model and the checks ``update_me`` applies before sending."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from appkit import errors
from appkit._uuid import parse_uuid
from appkit.model import Model

MAX_NAME = 200
MAX_URL = 2048
MAX_METADATA = 16384
_URL = re.compile(r"^https?://\S+$", re.I)


class Profile(Model, table="profiles", schema="appkit", primary_key="user_id"):
    """A user's profile (``appkit.profiles``)."""

    user_id: UUID
    display_name: str | None = None
    avatar_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def check_display_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME or "\x00" in value:
        raise errors.ValidationError(f"display_name must be a string of at most {MAX_NAME} characters",
                                     code="invalid_profile")
    return value


def check_avatar_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or not _URL.match(value):
        raise errors.ValidationError(f"avatar_url must be an http(s) URL of at most {MAX_URL} characters",
                                     code="invalid_profile")
    return value


def check_metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.ValidationError("metadata must be a dict (a JSON object)", code="invalid_profile")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(f"metadata is not JSON-serialisable: {exc}", code="invalid_profile") from None
    if len(text.encode()) > MAX_METADATA or "\\u0000" in text:
        raise errors.ValidationError(f"metadata must be at most {MAX_METADATA} bytes of JSON without NUL",
                                     code="invalid_profile")
    return value


def check_user_id(value: object) -> UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise errors.ValidationError(f"user_id must be a UUID, not {value!r}"[:200], code="invalid_user_id")
    return parsed
