"""A Supabase Storage compatible service for the local stack (mounted at ``/storage/v1``).

Buckets and objects live in ``storage.buckets`` / ``storage.objects``; every operation runs
as the caller's role with ``request.jwt.claims`` set, so Storage RLS policies decide.
Bytes live under ``<data_dir>/storage`` (see :mod:`appkit.local.storage.paths`).
"""

from __future__ import annotations

from appkit.local.storage.service import StorageService, create_service

__all__ = ["StorageService", "create_service"]
