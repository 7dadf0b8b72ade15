"""The audit log over a direct database connection (the CLI's ``list`` and ``tail``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from appkit import errors
from appkit.audit.models import AuditEntry, AuditFilter, check_older_than
from appkit.db.connect import admin_session, db_errors
from appkit.db.queries import load_queries

_Q = load_queries("appkit.audit")
_LOOKBACK = 500


def _params(f: AuditFilter, after_id: int = 0, limit: int | None = None) -> dict[str, Any]:
    return {"org": f.org, "schema": f.table_schema, "name": f.table_name, "actor": f.actor, "since": f.since,
            "until": f.until, "after_id": after_id, "limit": limit or f.limit}


def list_entries(db_url: str, f: AuditFilter) -> list[AuditEntry]:
    """Entries matching ``f``, newest first."""
    with admin_session(db_url) as conn:
        rows = conn.execute(_Q["list_entries"], _params(f)).fetchall()
    return [AuditEntry.model_validate(r) for r in rows]


def follow(db_url: str, f: AuditFilter, *, interval: float = 1.0, backlog: int = 0,
           on_ready: Callable[[], None] | None = None) -> Iterator[AuditEntry]:
    """Yield entries as they are written (oldest first), polling every ``interval`` seconds;
    starts with the last ``backlog`` matching entries. ``on_ready()`` is called once the
    starting point is fixed: every entry written after that is yielded."""
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not 0.05 <= interval <= 3600:
        raise errors.ValidationError("interval must be between 0.05 and 3600 seconds", code="invalid_interval")
    if isinstance(backlog, bool) or not isinstance(backlog, int) or not 0 <= backlog <= 1000:
        raise errors.ValidationError("backlog must be an integer from 0 to 1000", code="invalid_filter")
    with admin_session(db_url) as conn:
        row = conn.execute(_Q["last_id"]).fetchone()
        last = int(row["last_id"]) if row else 0
        # entries already there (a lower id may still commit later; only those are new)
        seen: set[int] = {int(r["id"]) for r in conn.execute(
            _Q["list_entries"], _params(f, max(0, last - _LOOKBACK), 1000)).fetchall() if r["id"] <= last}
        if on_ready is not None:
            on_ready()
        if backlog:
            rows = conn.execute(_Q["list_entries"], _params(f, 0, backlog)).fetchall()
            for r in reversed(rows):
                yield AuditEntry.model_validate(r)
        # ids are taken at insert but become visible at commit, so a lower id can appear after a
        # higher one: look back over a window and skip what was already yielded
        while True:
            with db_errors():
                rows = conn.execute(_Q["list_entries"], _params(f, max(0, last - _LOOKBACK), 1000)).fetchall()
            fresh = [r for r in reversed(rows) if r["id"] not in seen]
            for r in fresh:
                entry = AuditEntry.model_validate(r)
                seen.add(entry.id)
                last = max(last, entry.id)
                yield entry
            if len(seen) > 4 * _LOOKBACK:
                seen = {i for i in seen if i > last - _LOOKBACK}
            if not fresh:
                time.sleep(interval)


def audited_tables(db_url: str) -> list[str]:
    with admin_session(db_url) as conn:
        return [f"{r['table_schema']}.{r['table_name']}" for r in conn.execute(_Q["audited_tables"]).fetchall()]


def purge(db_url: str, older_than: timedelta) -> int:
    """Delete entries older than ``older_than``; returns how many."""
    older_than = check_older_than(older_than)
    with admin_session(db_url) as conn:
        row = conn.execute(_Q["purge"], {"older_than": older_than}).fetchone()
    return int(row["deleted"]) if row else 0
