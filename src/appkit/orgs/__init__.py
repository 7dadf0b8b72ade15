"""Organizations: ``app.orgs`` (``Orgs`` / ``AsyncOrgs``), ``app.rbac`` (``Rbac`` / ``AsyncRbac``)
and their models, over appkit's SQL (schema ``appkit``, see docs/orgs.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr
from appkit.orgs.models import Invitation, InvitationPreview, Membership, Organization, Role

if TYPE_CHECKING:
    from appkit._async.orgs import AsyncOrgs, AsyncRbac
    from appkit._sync.orgs import Orgs, Rbac

_LAZY = {"AsyncOrgs": "appkit._async.orgs", "AsyncRbac": "appkit._async.orgs",
         "Orgs": "appkit._sync.orgs", "Rbac": "appkit._sync.orgs"}
__getattr__ = lazy_getattr("appkit.orgs", _LAZY, globals())

__all__ = ["AsyncOrgs", "AsyncRbac", "Invitation", "InvitationPreview", "Membership", "Organization", "Orgs", "Rbac",
           "Role"]
