"""Audit log: trigger-based, append-only entries in ``appkit.audit_log``; ``app.audit`` in the SDK.

.. code-block:: python

    # in a migration: select appkit.audit_table('public.notes');
    entries = admin_of_org.audit.list(org=org_id, table="public.notes", limit=50)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.audit.models import AuditEntry, AuditFilter

if TYPE_CHECKING:
    from appkit._async.audit import AsyncAudit
    from appkit._sync.audit import Audit

__getattr__ = lazy_getattr("appkit.audit", {"AsyncAudit": "appkit._async.audit", "Audit": "appkit._sync.audit"},
                           globals())

__all__ = ["AsyncAudit", "Audit", "AuditEntry", "AuditFilter"]
