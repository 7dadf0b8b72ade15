"""What every storage endpoint family shares: the database, the disk store, size limits, the
verified caller, and removing files no row references any more."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from appkit._jwt import EXPIRED_JWT
from appkit.errors import AuthError
from appkit.local.context import StackContext
from appkit.local.storage import errors as E
from appkit.local.storage.db import StorageCaller, StorageDB
from appkit.local.storage.paths import DiskStore

BEARER = re.compile(r"^Bearer\s+", re.IGNORECASE)


class StorageBase:
    """Shared state and the caller's identity."""

    def __init__(self, ctx: StackContext, store: DiskStore) -> None:
        self.ctx = ctx
        self.store = store
        self.db: StorageDB | None = None
        self.global_limit = ctx.config.storage.file_size_limit

    @property
    def database(self) -> StorageDB:
        assert self.db is not None, "storage service not started"
        return self.db

    def caller(self, request: Request, *, allow_anon: bool = False) -> StorageCaller:
        """The verified caller. ``allow_anon``: missing/invalid tokens fall back to anon (as Storage does)."""
        token = BEARER.sub("", request.headers.get("authorization", "")).strip()
        if not token:
            token = request.headers.get("apikey", "").strip()
        if not token:
            if allow_anon:
                return StorageCaller("anon", {"role": "anon"}, verified=False)
            raise E.access_denied("jwt must be provided")
        try:
            claims = self.ctx.keys.verify(token)
        except AuthError as exc:
            if allow_anon:
                return StorageCaller("anon", {"role": "anon"}, verified=False)
            claim = exc.details.get("claim") if isinstance(exc.details, dict) else None
            if claim:  # jose's message, as Supabase Storage's verifier says it
                raise E.access_denied(f'"{claim}" claim must be a number') from None
            raise E.access_denied("jwt expired" if exc.code == EXPIRED_JWT else "invalid signature") from None
        role = claims.get("role")
        if not isinstance(role, str) or not role:
            role = "anon"
        return StorageCaller(role, claims)

    async def bucket_admin(self, bucket_id: str) -> dict[str, Any] | None:
        return await self.database.admin_one(
            "select id, public, file_size_limit, allowed_mime_types from storage.buckets where id = %s", (bucket_id,))

    def limit_for(self, bucket: dict[str, Any]) -> int:
        limit = self.global_limit
        if bucket.get("file_size_limit") is not None:
            limit = min(limit, int(bucket["file_size_limit"]))
        return limit

    async def gc(self, versions: list[Any]) -> None:
        """Delete the files of versions no row references any more (after the transaction committed)."""
        versions = [v for v in versions if v]
        if not versions:
            return
        rows = await self.database.admin_all(
            "select version from storage.objects where version = any(%s)", (versions,))
        alive = {r["version"] for r in rows}
        for v in versions:
            if v not in alive:
                self.store.remove(v)
