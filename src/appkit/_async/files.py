"""Files service over the official ``storage3`` client, scoped to the facade's caller."""

from __future__ import annotations

import builtins
import io
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from storage3.types import BaseBucket

from appkit import errors
from appkit._async.scope import AsyncScope
from appkit._async.tus import CHUNK_SIZE, AsyncTusUpload, ProgressCallback
from appkit._errors_map import boundary, from_response


@dataclass(frozen=True)
class StoredFile:
    """An uploaded object: ``path`` inside the bucket, ``key`` is ``bucket/path``."""

    bucket: str
    path: str
    key: str


@dataclass(frozen=True)
class FileInfo:
    """One entry of a listing (a folder has ``id`` None)."""

    name: str
    id: str | None
    size: int | None
    content_type: str | None
    updated_at: datetime | None
    metadata: dict[str, Any] | None

    @property
    def is_folder(self) -> bool:
        return self.id is None


FileData = bytes | bytearray | str | Path | IO[bytes]


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path or path.startswith("/"):
        raise errors.ValidationError(f"invalid object path {path!r}", code="InvalidKey")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise errors.ValidationError(f"invalid object path {path!r}: empty or dot segment", code="InvalidKey")
    return path


def _bytes_of(data: FileData) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, (str, Path)):
        try:
            return Path(data).read_bytes()
        except OSError as exc:
            raise errors.ValidationError(f"cannot read {data}: {exc.strerror}", code="invalid_file") from None
    if isinstance(data, io.IOBase) or hasattr(data, "read"):
        content = data.read()
        if not isinstance(content, bytes):
            raise errors.ValidationError("file objects must be opened in binary mode", code="invalid_file")
        return content
    raise errors.ValidationError(f"cannot upload a {type(data).__name__}", code="invalid_file")


class AsyncFiles:
    """Upload, download, list, sign and remove objects; manage buckets (usually as admin)."""

    def __init__(self, scope: AsyncScope) -> None:
        self._scope = scope

    async def upload(self, bucket: str, path: str, data: FileData, *, content_type: str | None = None,
                     upsert: bool = False, cache_control: int | None = None) -> StoredFile:
        """Store ``data`` (bytes, a path on disk, or a binary file object) at ``bucket/path``.

        A path on disk larger than 6 MB goes up with ``upload_resumable`` (streamed in 6 MB chunks).
        """
        _check_path(path)
        if isinstance(data, (str, Path)):
            try:
                size = Path(data).stat().st_size
            except OSError as exc:
                raise errors.ValidationError(f"cannot read {data}: {exc.strerror}", code="invalid_file") from None
            if size > CHUNK_SIZE:
                return await self.upload_resumable(bucket, path, data, content_type=content_type, upsert=upsert,
                                                   cache_control=cache_control)
        content = _bytes_of(data)
        options: dict[str, Any] = {"upsert": "true" if upsert else "false"}
        if content_type:
            options["content-type"] = content_type
        if cache_control is not None:
            options["cache-control"] = str(cache_control)
        storage = await self._scope.storage()
        with boundary():
            response = await storage.from_(bucket).upload(path, content, options)  # type: ignore[arg-type]
        return StoredFile(bucket=bucket, path=response.path, key=response.full_path)

    async def upload_resumable(self, bucket: str, path: str, file: str | Path, *, content_type: str | None = None,
                               upsert: bool = False, cache_control: int | None = None,
                               on_progress: ProgressCallback | None = None, resume_url: str | None = None,
                               on_url: Callable[[str], None] | None = None, chunk_size: int = CHUNK_SIZE,
                               retries: int = 5) -> StoredFile:
        """Upload a file from disk with the TUS protocol, ``chunk_size`` bytes at a time (never whole in memory).

        ``on_progress(sent, total)`` follows each chunk. A dropped connection is resumed where the
        server stopped (up to ``retries`` times in a row); after that ``errors.UploadInterrupted``
        carries the ``upload_url`` to pass as ``resume_url`` later (``on_url`` hears it as soon as the
        upload exists, e.g. to store it against a crash). A ``resume_url`` the server no longer
        knows starts a new upload.
        """
        _check_path(path)
        if not isinstance(bucket, str) or not bucket:
            raise errors.ValidationError("invalid bucket name", code="InvalidBucketName")
        if not isinstance(file, (str, Path)):
            raise errors.ValidationError("upload_resumable takes a path on disk", code="invalid_file")
        kind = content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        token = await self._scope.token()
        endpoint = f"{self._scope.core.settings.storage_url.rstrip('/')}/upload/resumable"
        upload = AsyncTusUpload(self._scope.core.http, endpoint, self._scope.headers(token), chunk_size=chunk_size,
                                retries=retries)
        await upload.run(Path(file), bucket=bucket, path=path, content_type=kind, upsert=upsert,
                         cache_control=cache_control, resume_url=resume_url, on_url=on_url, on_progress=on_progress)
        return StoredFile(bucket=bucket, path=path, key=f"{bucket}/{path}")

    async def update(self, bucket: str, path: str, data: FileData, *, content_type: str | None = None) -> StoredFile:
        """Replace an existing object."""
        _check_path(path)
        content = _bytes_of(data)
        options: dict[str, Any] = {"content-type": content_type} if content_type else {}
        storage = await self._scope.storage()
        with boundary():
            response = await storage.from_(bucket).update(path, content, options)  # type: ignore[arg-type]
        return StoredFile(bucket=bucket, path=response.path, key=response.full_path)

    async def download(self, bucket: str, path: str) -> bytes:
        _check_path(path)
        storage = await self._scope.storage()
        with boundary():
            return await storage.from_(bucket).download(path)

    async def download_to(self, bucket: str, path: str, dest: str | Path, *,
                          on_progress: ProgressCallback | None = None) -> int:
        """Stream an object to ``dest`` on disk (never whole in memory); returns its size.

        The bytes go to a temporary file next to ``dest`` that replaces it only once complete.
        """
        _check_path(path)
        target = Path(dest)
        token = await self._scope.token()
        url = f"{self._scope.core.settings.storage_url.rstrip('/')}/object/{quote(bucket)}/{quote(path)}"
        temp = target.with_name(f".{target.name}.part")
        http = self._scope.core.http
        with boundary():
            response = await http.send(http.build_request("GET", url, headers=self._scope.headers(token)),
                                        stream=True)
        done = 0
        try:
            if response.status_code != 200:
                await response.aread()
                raise from_response(response)
            total = int(response.headers.get("content-length") or 0)
            with open(temp, "wb") as out, boundary():
                async for chunk in response.aiter_bytes(1024 * 1024):
                    out.write(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
            temp.replace(target)
        except OSError as exc:
            raise errors.ValidationError(f"cannot write {target}: {exc.strerror}", code="invalid_file") from None
        finally:
            await response.aclose()
            temp.unlink(missing_ok=True)
        return done

    async def signed_url(self, bucket: str, path: str, *, expires_in: int = 3600,
                         download: bool | str = False) -> str:
        """A URL anyone can GET for ``expires_in`` seconds (``download`` sets Content-Disposition)."""
        _check_path(path)
        if expires_in < 1:
            raise errors.ValidationError("expires_in must be >= 1 second", code="InvalidRequest")
        options: dict[str, Any] = {"download": download} if download else {}
        storage = await self._scope.storage()
        with boundary():
            response = await storage.from_(bucket).create_signed_url(path, expires_in, options)  # type: ignore[arg-type]
        url = response.get("signedURL") or response.get("signedUrl")
        if not url:
            raise errors.UnexpectedResponse("storage returned no signed URL", code="unexpected_response")
        return url

    async def public_url(self, bucket: str, path: str) -> str:
        """The URL of an object in a public bucket (no request is made)."""
        _check_path(path)
        storage = await self._scope.storage()
        with boundary():
            return await storage.from_(bucket).get_public_url(path)

    async def list(self, bucket: str, prefix: str = "", *, limit: int = 100, offset: int = 0,
                   search: str | None = None) -> builtins.list[FileInfo]:
        """Objects and folders directly under ``prefix``."""
        options: dict[str, Any] = {"limit": limit, "offset": offset}
        if search:
            options["search"] = search
        storage = await self._scope.storage()
        with boundary():
            entries = await storage.from_(bucket).list(prefix, options)  # type: ignore[arg-type]
        if not isinstance(entries, list):
            raise errors.UnexpectedResponse("storage list did not return an array", code="unexpected_response")
        return [_info(e) for e in entries if isinstance(e, dict)]

    async def remove(self, bucket: str, paths: str | Sequence[str]) -> builtins.list[str]:
        """Delete objects; returns the paths that were actually removed."""
        items = [paths] if isinstance(paths, str) else list(paths)
        for p in items:
            _check_path(p)
        if not items:
            return []
        storage = await self._scope.storage()
        with boundary():
            removed = await storage.from_(bucket).remove(items)
        return [str(r.get("name")) for r in removed if isinstance(r, dict)]

    async def move(self, bucket: str, source: str, destination: str) -> None:
        _check_path(source)
        _check_path(destination)
        storage = await self._scope.storage()
        with boundary():
            await storage.from_(bucket).move(source, destination)

    async def copy(self, bucket: str, source: str, destination: str) -> None:
        _check_path(source)
        _check_path(destination)
        storage = await self._scope.storage()
        with boundary():
            await storage.from_(bucket).copy(source, destination)

    # buckets -----------------------------------------------------------------
    async def create_bucket(self, bucket: str, *, public: bool = False, file_size_limit: int | None = None,
                            allowed_mime_types: Sequence[str] | None = None) -> None:
        options: dict[str, Any] = {"public": public}
        if file_size_limit is not None:
            options["file_size_limit"] = file_size_limit
        if allowed_mime_types is not None:
            options["allowed_mime_types"] = list(allowed_mime_types)
        storage = await self._scope.storage()
        with boundary():
            await storage.create_bucket(bucket, options=options)  # type: ignore[arg-type]

    async def update_bucket(self, bucket: str, *, public: bool | None = None, file_size_limit: int | None = None,
                            allowed_mime_types: Sequence[str] | None = None) -> None:
        """Change a bucket's visibility or limits (options left None keep their value)."""
        current = await self.get_bucket(bucket)
        options: dict[str, Any] = {
            "public": current.public if public is None else public,
            "file_size_limit": current.file_size_limit if file_size_limit is None else file_size_limit,
            "allowed_mime_types": current.allowed_mime_types if allowed_mime_types is None
            else list(allowed_mime_types),
        }
        storage = await self._scope.storage()
        with boundary():
            await storage.update_bucket(bucket, options)  # type: ignore[arg-type]

    async def get_bucket(self, bucket: str) -> BaseBucket:
        storage = await self._scope.storage()
        with boundary():
            return await storage.get_bucket(bucket)

    async def list_buckets(self) -> builtins.list[BaseBucket]:
        storage = await self._scope.storage()
        with boundary():
            return list(await storage.list_buckets())

    async def empty_bucket(self, bucket: str) -> None:
        storage = await self._scope.storage()
        with boundary():
            await storage.empty_bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        storage = await self._scope.storage()
        with boundary():
            await storage.delete_bucket(bucket)


def _info(entry: dict[str, Any]) -> FileInfo:
    metadata = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else None
    updated = entry.get("updated_at")
    updated_at: datetime | None = None
    if isinstance(updated, str):
        try:
            updated_at = datetime.fromisoformat(updated.replace("Z", "+00:00"))
        except ValueError:
            updated_at = None
    size = metadata.get("size") if metadata else None
    mimetype = metadata.get("mimetype") if metadata else None
    return FileInfo(
        name=str(entry.get("name", "")),
        id=entry.get("id"),
        size=int(size) if isinstance(size, (int, float)) else None,
        content_type=mimetype if isinstance(mimetype, str) else None,
        updated_at=updated_at,
        metadata=metadata,
    )
