"""Bulk users import and export straight through Postgres (COPY), keeping password hashes as they are.

``import_users`` is all or nothing: the records go through one transaction, and a user
whose id, email or phone is already taken fails the whole import (or is skipped with
``skip_existing``). Triggers on ``auth.users`` fire as for any sign-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from appkit import errors
from appkit.db.connect import connect
from appkit.db.queries import load_queries
from appkit.users.records import UserRecord

Q = load_queries("appkit.users", "queries.sql")
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportResult:
    imported: int
    skipped: int


def import_users(db_url: str, records: Sequence[UserRecord], *, skip_existing: bool = False,
                 on_progress: Progress | None = None, batch: int = 1000) -> ImportResult:
    """Insert ``records`` (already checked by ``appkit.users.records.parse``) into ``auth.users``
    and ``auth.identities`` in one transaction; ``on_progress(n)`` after each batch is staged."""
    with connect(db_url) as conn:
        try:
            with conn.transaction():
                conn.execute(Q["create_staging"])
                with conn.cursor().copy(Q["copy_staging"]) as copy:
                    for start in range(0, len(records), batch):
                        for r in records[start:start + batch]:
                            copy.write_row((r.id, r.email, r.phone, r.password_hash, r.email_confirmed_at,
                                            r.phone_confirmed_at, r.role, json.dumps(r.user_metadata),
                                            json.dumps(r.app_metadata), r.banned_until, r.created_at))
                        if on_progress is not None:
                            on_progress(min(start + batch, len(records)))
                skipped = 0
                if skip_existing:
                    skipped = conn.execute(Q["delete_existing"]).rowcount
                else:
                    row = conn.execute(Q["first_conflict"]).fetchone()
                    if row is not None:
                        uid, email, phone, what = row
                        value = {"id": uid, "email": email, "phone": phone}[str(what)]
                        raise errors.Conflict(f"a user with {what} {value} already exists (nothing was imported;"
                                              " --skip-existing imports the others)", code="user_already_exists")
                imported = conn.execute(Q["insert_users"]).rowcount
                conn.execute(Q["insert_identities"])
        except psycopg.Error as exc:
            raise _db_error(exc) from None
    return ImportResult(imported=imported, skipped=skipped)


def export_users(db_url: str) -> Iterator[UserRecord]:
    """Every user that is not deleted, oldest first, with its password hash."""
    with connect(db_url) as conn:
        try:
            with conn.cursor(name="appkit_user_export") as cur:
                cur.itersize = 2000
                cur.execute(Q["export_users"])
                for row in cur:
                    yield UserRecord(
                        id=str(row[0]), email=_s(row[1]), phone=_s(row[2]), password_hash=_s(row[3]),
                        email_confirmed_at=_ts(row[4]), phone_confirmed_at=_ts(row[5]), role=str(row[6]),
                        user_metadata=dict(row[7]), app_metadata=dict(row[8]),  # type: ignore[call-overload]
                        banned_until=_ts(row[9]), created_at=_ts(row[10]),
                    )
        except psycopg.Error as exc:
            raise _db_error(exc) from None


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _ts(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _db_error(exc: psycopg.Error) -> errors.AppKitError:
    message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    cls = errors.Conflict if exc.sqlstate == "23505" else errors.DatabaseError
    return cls(f"the database refused the import: {message}" if cls is errors.Conflict else message,
               code=exc.sqlstate)
