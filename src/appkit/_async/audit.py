"""``app.audit``: read the audit log through PostgREST (RLS: org admins see their orgs' entries)."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._errors_map import boundary
from appkit.audit.models import AuditEntry, audit_filter, check_older_than


class AsyncAudit:
    """Audit entries the caller may read: an org admin their orgs', the service role all."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope

    async def list(self, *, org: UUID | str | None = None, table: str | None = None,
                   actor: UUID | str | None = None, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 100) -> list[AuditEntry]:
        """Entries newest first; ``table`` is ``"schema.name"`` (or ``"name"`` in public);
        ``since`` inclusive, ``until`` exclusive (timezone-aware datetimes)."""
        f = audit_filter(org=org, table=table, actor=actor, since=since, until=until, limit=limit)
        client = await self._scope.rest("appkit")
        q = client.from_("audit_log").select("*")
        if f.org is not None:
            q = q.eq("org_id", str(f.org))
        if f.table_schema is not None and f.table_name is not None:
            q = q.eq("table_schema", f.table_schema).eq("table_name", f.table_name)
        if f.actor is not None:
            q = q.eq("actor", str(f.actor))
        if f.since is not None:
            q = q.gte("at", f.since.isoformat())
        if f.until is not None:
            q = q.lt("at", f.until.isoformat())
        with boundary():
            response = await q.order("id", desc=True).limit(f.limit).execute()
            return [AuditEntry.model_validate(row) for row in response.data]

    async def purge(self, older_than: timedelta) -> int:
        """Delete entries older than ``older_than`` (service role); returns how many."""
        older_than = check_older_than(older_than)
        client = await self._scope.rest("appkit")
        with boundary():
            response = await client.rpc("audit_purge", {"older_than": f"{older_than.total_seconds()} seconds"}) \
                .execute()
        if isinstance(response.data, bool) or not isinstance(response.data, int):
            raise errors.UnexpectedResponse("audit_purge answered a non-integer", code="unexpected_response")
        return response.data
