"""PostgREST-compatible REST service for the local stack, mounted at ``/rest/v1``.

See ``docs/rest.md`` for what is supported and how it differs from PostgREST.
"""

from __future__ import annotations

from appkit.local.rest.service import RestService, create_service

__all__ = ["RestService", "create_service"]
