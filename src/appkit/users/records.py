"""The users import/export file format: JSON and CSV records that keep bcrypt hashes as they are.

One record per user, the same fields in both formats (firebase-admin's ``UserImportRecord``
is the model): ``id``, ``email``, ``phone``, ``email_confirmed_at``, ``phone_confirmed_at``,
``password_hash`` (bcrypt, stored unchanged), ``role``, ``user_metadata``, ``app_metadata``
(JSON objects; JSON text in a CSV cell), ``banned_until``, ``created_at``. JSON files hold
``{"users": [...]}`` (a bare array is read too). Reading checks every record before any is
used, so a bad file is rejected whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from appkit import errors

Format = Literal["json", "csv"]
FIELDS: tuple[str, ...] = ("id", "email", "phone", "email_confirmed_at", "phone_confirmed_at", "password_hash",
                           "role", "user_metadata", "app_metadata", "banned_until", "created_at")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class UserRecord:
    """One user as exported or to import (timestamps are ISO 8601 strings, as in the file)."""

    id: str
    email: str | None = None
    phone: str | None = None
    email_confirmed_at: str | None = None
    phone_confirmed_at: str | None = None
    password_hash: str | None = None
    role: str = "authenticated"
    user_metadata: dict[str, Any] = field(default_factory=dict)
    app_metadata: dict[str, Any] = field(default_factory=dict)
    banned_until: str | None = None
    created_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_of(path: Path | str, given: str | None = None) -> Format:
    """The file format: ``given``, or from the extension (``.json`` / ``.csv``)."""
    name = (given or Path(str(path)).suffix.lstrip(".")).lower()
    if name not in ("json", "csv"):
        raise errors.ValidationError(f"cannot tell the format of {path}: use a .json or .csv name or --format",
                                     code="validation_failed")
    return name  # type: ignore[return-value]


def parse(text: str, fmt: Format) -> list[UserRecord]:
    """Every record of a file's text, checked; the first problem raises ``errors.ValidationError``."""
    rows: list[Mapping[str, Any]]
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise errors.ValidationError(f"not valid JSON: {exc}", code="validation_failed") from None
        if isinstance(data, dict) and isinstance(data.get("users"), list):
            data = data["users"]
        if not isinstance(data, list):
            raise errors.ValidationError('expected {"users": [...]} or a JSON array of users',
                                         code="validation_failed")
        rows = data
    else:
        reader = csv.DictReader(io.StringIO(text))
        unknown = sorted(set(reader.fieldnames or ()) - set(FIELDS))
        if unknown:
            raise errors.ValidationError(f"unknown CSV column(s): {', '.join(unknown)}", code="validation_failed")
        rows = [{k: _csv_value(k, v, n) for k, v in row.items()} for n, row in enumerate(reader, start=1)]
    records = [_record(row, n) for n, row in enumerate(rows, start=1)]
    _check_unique(records)
    return records


def dump(records: Iterable[UserRecord], fmt: Format) -> str:
    """The text of a file holding ``records``."""
    items = [r.as_dict() for r in records]
    if fmt == "json":
        return json.dumps({"users": items}, indent=1, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else ("" if v is None else v)
                         for k, v in item.items()})
    return out.getvalue()


def _csv_value(key: str | None, value: str | None, n: int) -> Any:
    if key is None:
        raise errors.ValidationError(f"record {n}: more cells than columns", code="validation_failed")
    if value is None or value == "":
        return None
    if key in ("user_metadata", "app_metadata"):
        try:
            return json.loads(value)
        except ValueError:
            raise errors.ValidationError(f"record {n}: {key} is not JSON", code="validation_failed") from None
    return value


def _bad(n: int, message: str) -> errors.ValidationError:
    return errors.ValidationError(f"record {n}: {message}", code="validation_failed")


def _record(row: Any, n: int) -> UserRecord:
    if not isinstance(row, Mapping):
        raise _bad(n, "not an object")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise _bad(n, f"unknown field(s): {', '.join(map(str, unknown))}")
    values: dict[str, Any] = {}
    for key in ("id", "email", "phone", "password_hash", "role", "email_confirmed_at", "phone_confirmed_at",
                "banned_until", "created_at"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise _bad(n, f"{key} must be a string")
        values[key] = value or None
    try:
        values["id"] = str(uuid.UUID(values["id"])) if values["id"] else str(uuid.uuid4())
    except ValueError:
        raise _bad(n, f"invalid id {values['id']!r}: expected a UUID") from None
    email, phone = values["email"], values["phone"]
    if not email and not phone:
        raise _bad(n, "needs an email or a phone")
    if email is not None:
        if not _EMAIL.match(email):
            raise _bad(n, f"invalid email {email!r}")
        values["email"] = email.strip().lower()
    if phone is not None:
        if not _PHONE.match(phone):
            raise _bad(n, f"invalid phone {phone!r}")
        values["phone"] = phone.lstrip("+")
    if values["password_hash"] is not None and not _BCRYPT.match(values["password_hash"]):
        raise _bad(n, "password_hash is not a bcrypt hash ($2a$/$2b$/$2y$)")
    if values["role"] is None:
        values["role"] = "authenticated"
    elif not _ROLE.match(values["role"]):
        raise _bad(n, f"invalid role {values['role']!r}")
    for key in ("email_confirmed_at", "phone_confirmed_at", "banned_until", "created_at"):
        if values[key] is not None:
            try:
                parsed = datetime.fromisoformat(values[key].replace("Z", "+00:00"))
            except ValueError:
                raise _bad(n, f"{key} is not an ISO 8601 timestamp") from None
            if parsed.tzinfo is None:
                raise _bad(n, f"{key} needs a time zone (e.g. Z or +00:00)")
            values[key] = parsed.isoformat()
    for key in ("user_metadata", "app_metadata"):
        value = row.get(key)
        if value is not None and not isinstance(value, dict):
            raise _bad(n, f"{key} must be a JSON object")
        values[key] = dict(value or {})
    return UserRecord(**values)


def _check_unique(records: list[UserRecord]) -> None:
    for key in ("id", "email", "phone"):
        seen: dict[str, int] = {}
        for n, record in enumerate(records, start=1):
            value = getattr(record, key)
            if value is None:
                continue
            if value in seen:
                raise _bad(n, f"{key} {value!r} repeats record {seen[value]}")
            seen[value] = n
