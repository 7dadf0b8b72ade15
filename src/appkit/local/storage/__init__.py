"""A Supabase Storage compatible service for the local stack (mounted at ``/storage/v1``).

Buckets and objects live in ``storage.buckets`` / ``storage.objects``; every operation runs
as the caller's role with ``request.jwt.claims`` set, so Storage RLS policies decide.
Bytes live under ``<data_dir>/storage`` (see :mod:`appkit.local.storage.paths`).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from appkit.errors import ConfigError
from appkit.local.context import StackContext
from appkit.local.storage import errors as E
from appkit.local.storage.api import StorageAPI
from appkit.local.storage.db import Caller, StorageDB
from appkit.local.storage.files import DEFAULT_MIME, Ingested
from appkit.local.storage.paths import DiskStore, check_bucket_id, is_version, key_problem
from appkit.local.storage.tus import TusUploads
from appkit.local.urlcheck import url_problem

log = logging.getLogger("appkit.local.storage")

Endpoint = Callable[[Request], Awaitable[Response]]


def _wrap(fn: Endpoint, *, tus: bool = False) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        head = request.method == "HEAD"
        try:
            problem = url_problem(request.scope)
            if problem is not None:
                message = problem[0].upper() + problem[1:]
                if problem.startswith("the path"):  # a bucket name or object key
                    raise E.StorageError(400, "InvalidKey", message)
                raise E.invalid_request(message)
            return await fn(request)
        except E.StorageError as exc:
            return exc.response(tus=tus, head=head)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("storage: unexpected error on %s %s", request.method, request.url.path)
            return E.internal_error().response(tus=tus, head=head)

    return endpoint


class StorageService:
    name = "storage"

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.store = DiskStore(ctx.data_dir / "storage")
        self.api = StorageAPI(ctx, self.store)
        self.tus = TusUploads(self.api)
        a, t = self.api, self.tus
        any_obj = ["GET", "HEAD"]
        routes = [
            Route("/bucket", _wrap(a.list_buckets), methods=["GET"]),
            Route("/bucket", _wrap(a.create_bucket), methods=["POST"]),
            Route("/bucket/", _wrap(a.list_buckets), methods=["GET"]),
            Route("/bucket/", _wrap(a.create_bucket), methods=["POST"]),
            Route("/bucket/{bucket}/empty", _wrap(a.empty_bucket), methods=["POST"]),
            Route("/bucket/{bucket}", _wrap(a.get_bucket), methods=["GET"]),
            Route("/bucket/{bucket}", _wrap(a.update_bucket), methods=["PUT"]),
            Route("/bucket/{bucket}", _wrap(a.delete_bucket), methods=["DELETE"]),
            Route("/object/list/{bucket}", _wrap(a.list_objects), methods=["POST"]),
            Route("/object/list-v2/{bucket}", _wrap(a.list_objects_v2), methods=["POST"]),
            Route("/object/move", _wrap(a.move), methods=["POST"]),
            Route("/object/copy", _wrap(a.copy), methods=["POST"]),
            Route("/object/sign/{bucket}", _wrap(a.sign_many), methods=["POST"]),
            Route("/object/sign/{bucket}/{key:path}", _wrap(a.sign_one), methods=["POST"]),
            Route("/object/sign/{bucket}/{key:path}", _wrap(a.download_signed), methods=any_obj),
            Route("/object/upload/sign/{bucket}/{key:path}", _wrap(a.sign_upload), methods=["POST"]),
            Route("/object/upload/sign/{bucket}/{key:path}", _wrap(a.upload_signed), methods=["PUT"]),
            Route("/object/info/public/{bucket}/{key:path}", _wrap(a.info_public), methods=["GET"]),
            Route("/object/info/authenticated/{bucket}/{key:path}", _wrap(a.info_authenticated), methods=["GET"]),
            Route("/object/info/{bucket}/{key:path}", _wrap(a.info), methods=["GET"]),
            Route("/object/public/{bucket}/{key:path}", _wrap(a.download_public), methods=any_obj),
            Route("/object/authenticated/{bucket}/{key:path}", _wrap(a.download), methods=any_obj),
            Route("/object/{bucket}", _wrap(a.delete_many), methods=["DELETE"]),
            Route("/object/{bucket}/{key:path}", _wrap(a.download), methods=any_obj),
            Route("/object/{bucket}/{key:path}", _wrap(a.upload), methods=["POST", "PUT"]),
            Route("/object/{bucket}/{key:path}", _wrap(a.delete_one), methods=["DELETE"]),
            # image transformation is not performed: the original bytes are served (see docs/storage.md)
            Route("/render/image/authenticated/{bucket}/{key:path}", _wrap(a.download), methods=any_obj),
            Route("/render/image/public/{bucket}/{key:path}", _wrap(a.download_public), methods=any_obj),
            Route("/render/image/sign/{bucket}/{key:path}", _wrap(a.download_signed), methods=any_obj),
            Route("/upload/resumable/sign", _wrap(t.options, tus=True), methods=["OPTIONS"]),
            Route("/upload/resumable/sign", _wrap(t.create_signed, tus=True), methods=["POST"]),
            Route("/upload/resumable/sign/", _wrap(t.create_signed, tus=True), methods=["POST"]),
            Route("/upload/resumable/sign/{upload_id}", _wrap(t.head_signed, tus=True), methods=["HEAD", "GET"]),
            Route("/upload/resumable/sign/{upload_id}", _wrap(t.patch_signed, tus=True), methods=["PATCH"]),
            Route("/upload/resumable/sign/{upload_id}", _wrap(t.delete_signed, tus=True), methods=["DELETE"]),
            Route("/upload/resumable/sign/{upload_id}", _wrap(t.options, tus=True), methods=["OPTIONS"]),
            Route("/upload/resumable", _wrap(t.options, tus=True), methods=["OPTIONS"]),
            Route("/upload/resumable", _wrap(t.create, tus=True), methods=["POST"]),
            Route("/upload/resumable/", _wrap(t.create, tus=True), methods=["POST"]),
            Route("/upload/resumable/{upload_id}", _wrap(t.head, tus=True), methods=["HEAD", "GET"]),
            Route("/upload/resumable/{upload_id}", _wrap(t.patch, tus=True), methods=["PATCH"]),
            Route("/upload/resumable/{upload_id}", _wrap(t.delete, tus=True), methods=["DELETE"]),
            Route("/upload/resumable/{upload_id}", _wrap(t.options, tus=True), methods=["OPTIONS"]),
        ]
        self.app = Starlette(routes=routes)

    async def startup(self) -> None:
        self.store.prepare()
        user_pool = await self.ctx.pool("storage", user="authenticator", max_size=10)
        admin_pool = await self.ctx.pool("storage-admin", user="supabase_storage_admin", max_size=5)
        self.api.db = StorageDB(user_pool, admin_pool)
        await self.seed_buckets()
        await self.clean_orphans()
        self.tus.cleanup()

    async def shutdown(self) -> None:
        self.api.db = None

    async def seed_buckets(self) -> None:
        """Create (or update) the buckets declared in config.toml, as ``supabase seed buckets`` does."""
        buckets = self.ctx.config.storage.buckets
        if not buckets:
            return
        for name in buckets:
            try:
                check_bucket_id(name)
            except E.StorageError:
                raise ConfigError(f"supabase/config.toml: [storage.buckets.{name}]: invalid bucket name") from None
        async with self.api.database.as_admin() as conn:
            for name, cfg in buckets.items():
                await conn.execute(
                    "insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)"
                    " values (%s, %s, %s, %s, %s) on conflict (id) do update set public = excluded.public,"
                    " file_size_limit = excluded.file_size_limit,"
                    " allowed_mime_types = excluded.allowed_mime_types, updated_at = now()",
                    (name, name, cfg.public, cfg.file_size_limit, cfg.allowed_mime_types))
        for name, cfg in buckets.items():
            if cfg.objects_path:
                await self.seed_objects(name, self.ctx.project_dir / "supabase" / cfg.objects_path)

    async def seed_objects(self, bucket_id: str, directory: Path) -> None:
        """Upload the files under ``objects_path`` that the bucket does not hold yet (keys = relative paths)."""
        if not directory.is_dir():
            log.warning("storage: objects_path %s of bucket %s is not a directory", directory, bucket_id)
            return
        rows = await self.api.database.admin_all("select name from storage.objects where bucket_id = %s",
                                                 (bucket_id,))
        present = {r["name"] for r in rows}
        owner = Caller("service_role", {"role": "service_role"})
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            key = path.relative_to(directory).as_posix()
            if key in present or key_problem(key) is not None:
                continue
            temp = self.store.temp_path()
            shutil.copyfile(path, temp)
            with open(temp, "rb") as f:
                os.fsync(f.fileno())
            mimetype = mimetypes.guess_type(path.name)[0] or DEFAULT_MIME
            ing = Ingested(temp, temp.stat().st_size, mimetype, "max-age=3600")
            try:
                await self.api.commit_file(ing, bucket_id, key, db_caller=None, owner=owner, upsert=False,
                                           method="POST")
            except E.StorageError as exc:
                temp.unlink(missing_ok=True)
                log.warning("storage: could not seed %s/%s: %s", bucket_id, key, exc.message)

    async def clean_orphans(self) -> dict[str, int]:
        """Crash recovery: temp files, files without a row, and (embedded database) rows without a file."""
        removed = {"temp": 0, "files": 0, "rows": 0}
        for tmp in self.store.tmp.glob("*"):
            tmp.unlink(missing_ok=True)
            removed["temp"] += 1
        rows = await self.api.database.admin_all("select id, version from storage.objects")
        versions = {r["version"] for r in rows}
        on_disk: set[str] = set()
        for version, path in self.store.iter_versions():
            if version in versions:
                on_disk.add(version)
            else:
                path.unlink(missing_ok=True)
                removed["files"] += 1
        if self.ctx.embedded:
            # only rows this service wrote (its version format); rows inserted by SQL are left alone
            missing: list[Any] = [r["id"] for r in rows if is_version(r["version"]) and r["version"] not in on_disk]
            if missing:
                async with self.api.database.as_admin() as conn:
                    await conn.execute("delete from storage.objects where id = any(%s)", (missing,))
                removed["rows"] = len(missing)
        if any(removed.values()):
            log.info("storage: removed %(temp)d temp files, %(files)d orphan files, %(rows)d rows without files",
                     removed)
        return removed


def create_service(ctx: StackContext) -> StorageService:
    return StorageService(ctx)
