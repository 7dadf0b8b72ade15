"""The Storage page: buckets (create, settings, empty, delete) and a file browser with folders: upload,
download, move, delete and signed links. Everything goes through ``app.admin.files``; bytes pass through
this server (streamed to a temporary file), so the browser never holds a storage key.

Uploads: the form posts the files (it works without JavaScript; drag and drop fills it). With
JavaScript, a file over :data:`CHUNKED_FROM` bytes is sent in chunks instead (``storage.js``): each
``POST /storage/<bucket>/-/chunks?id=&offset=&total=&path=`` appends to a partial file here, a chunk at
the wrong offset answers 409 with the offset the server has, and ``GET`` of the same URL tells where to
resume after a dropped connection. The last chunk sends the file on to the project (over 6 MB with the
SDK's resumable TUS upload)."""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from appkit.studio.pages import Page
from appkit.studio.pages import _forms as f
from appkit.studio.render import redirect, render
from appkit.studio.security import csrf_protect
from appkit.studio.target import studio_of

PAGE_SIZE = 100
#: files at least this large are uploaded in chunks by storage.js
CHUNKED_FROM = 6 * 1024 * 1024
MAX_CHUNK = 8 * 1024 * 1024
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
#: what Supabase Studio stores to make an empty folder visible
FOLDER_PLACEHOLDER = ".emptyFolderPlaceholder"


def _bucket(request: Request) -> str:
    name = str(request.path_params["bucket"])
    if not name or len(name) > 100 or "\x00" in name:
        raise HTTPException(404, "no such bucket")
    return name


def _clean(path: str, what: str = "path") -> str:
    """An object path without leading/trailing slashes; 400 for empty or dot segments."""
    path = path.strip("/")
    if "\x00" in path or len(path) > 1024 or any(p in ("", ".", "..") for p in path.split("/")):
        raise HTTPException(400, f"invalid {what} {path[:100]!r}")
    return path


def url_of(bucket: str, path: str = "") -> str:
    return f"/storage/{quote(bucket, safe='')}/{quote(path)}"


def _crumbs(bucket: str, prefix: str) -> list[tuple[str, str]]:
    out = [(bucket, url_of(bucket))]
    parts = [p for p in prefix.split("/") if p]
    for i, part in enumerate(parts):
        out.append((part, url_of(bucket, "/".join(parts[: i + 1]) + "/")))
    return out


async def index(request: Request) -> Response:
    buckets = await studio_of(request).admin.files.list_buckets()
    return render(request, "storage.html", {"buckets": sorted(buckets, key=lambda b: b.name)}, active="storage")


def _mime_types(raw: str) -> list[str] | None:
    items = [m.strip() for m in raw.replace("\n", ",").split(",") if m.strip()]
    return items or None


@csrf_protect
async def create_bucket(request: Request) -> Response:
    form = await request.form()
    name = f.text(form, "name", required=True, max_len=100)
    await studio_of(request).admin.files.create_bucket(
        name, public=f.checkbox(form, "public"),
        file_size_limit=f.integer(form, "file_size_limit", lo=0, hi=2**53),
        allowed_mime_types=_mime_types(f.text(form, "allowed_mime_types", max_len=2000)))
    return redirect(url_of(name), f"Bucket {name} created.")


@csrf_protect
async def bucket_settings(request: Request) -> Response:
    bucket = _bucket(request)
    form = await request.form()
    files = studio_of(request).admin.files
    await files.update_bucket(bucket, public=f.checkbox(form, "public"),
                              file_size_limit=f.integer(form, "file_size_limit", default=0, lo=0, hi=2**53),
                              allowed_mime_types=_mime_types(f.text(form, "allowed_mime_types", max_len=2000)) or [])
    return redirect(url_of(bucket), "Bucket settings saved.")


@csrf_protect
async def empty_bucket(request: Request) -> Response:
    bucket = _bucket(request)
    await studio_of(request).admin.files.empty_bucket(bucket)
    return redirect(url_of(bucket), f"Bucket {bucket} emptied.")


@csrf_protect
async def delete_bucket(request: Request) -> Response:
    bucket = _bucket(request)
    await studio_of(request).admin.files.delete_bucket(bucket)
    return redirect("/storage", f"Bucket {bucket} deleted.")


async def browse(request: Request) -> Response:
    """``/storage/<bucket>/<folder>/`` lists a folder; ``/storage/<bucket>/<path>`` shows an object
    (``?download=1`` streams it)."""
    bucket = _bucket(request)
    raw = str(request.path_params.get("path", ""))
    files = studio_of(request).admin.files
    if raw == "" or raw.endswith("/"):
        prefix = _clean(raw, "folder") + "/" if raw.strip("/") else ""
        offset = f.integer(request.query_params, "offset", default=0, lo=0, hi=10_000_000)
        assert offset is not None
        info = await files.get_bucket(bucket)
        entries = await files.list(bucket, prefix.rstrip("/"), limit=PAGE_SIZE + 1, offset=offset)
        more = len(entries) > PAGE_SIZE
        entries = [e for e in entries[:PAGE_SIZE] if e.name != FOLDER_PLACEHOLDER]
        return render(request, "storage_folder.html", {
            "bucket": info, "prefix": prefix, "entries": entries, "crumbs": _crumbs(bucket, prefix),
            "offset": offset, "next_offset": offset + PAGE_SIZE if more else None, "url_of": url_of,
            "chunked_from": CHUNKED_FROM,
        }, active="storage")
    path = _clean(raw)
    if f.checkbox(request.query_params, "download"):
        return await _download(request, bucket, path)
    parent, _, name = path.rpartition("/")
    found = [e for e in await files.list(bucket, parent, search=name, limit=100) if e.name == name and not e.is_folder]
    if not found:
        raise HTTPException(404, f"no object {path!r} in bucket {bucket!r}")
    return render(request, "storage_object.html", {
        "bucket": bucket, "path": path, "file": found[0], "crumbs": _crumbs(bucket, parent + "/" if parent else ""),
        "signed": None, "url_of": url_of,
    }, active="storage")


async def _download(request: Request, bucket: str, path: str) -> Response:
    """Stream the object through a temporary file (never whole in memory), removed once sent."""
    fd, temp = tempfile.mkstemp(prefix="appkit-studio-")
    os.close(fd)
    try:
        await studio_of(request).admin.files.download_to(bucket, path, temp)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    name = path.rsplit("/", 1)[-1]
    return FileResponse(temp, filename=name, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                        background=BackgroundTask(Path(temp).unlink, missing_ok=True))


@csrf_protect
async def upload(request: Request) -> Response:
    bucket = _bucket(request)
    form = await request.form()
    prefix = f.text(form, "prefix", max_len=1024).strip("/")
    if prefix:
        prefix = _clean(prefix, "folder") + "/"
    uploads = [u for u in form.getlist("file") if isinstance(u, UploadFile) and u.filename]
    if not uploads:
        raise HTTPException(400, "choose a file to upload")
    files = studio_of(request).admin.files
    upsert = f.checkbox(form, "upsert")
    for item in uploads:
        name = _clean(item.filename.replace("\\", "/").rsplit("/", 1)[-1], "file name")  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory(prefix="appkit-studio-") as tmp:
            local = Path(tmp) / "upload"
            with open(local, "wb") as out:
                shutil.copyfileobj(item.file, out, 1024 * 1024)
            await files.upload(bucket, prefix + name, local, upsert=upsert,
                               content_type=item.content_type or None)
    names = ", ".join(str(u.filename) for u in uploads)
    return redirect(url_of(bucket, prefix), f"Uploaded {names}.")


@csrf_protect
async def new_folder(request: Request) -> Response:
    bucket = _bucket(request)
    form = await request.form()
    prefix = f.text(form, "prefix", max_len=1024).strip("/")
    folder = _clean(f"{prefix}/{f.text(form, 'name', required=True, max_len=200)}", "folder")
    await studio_of(request).admin.files.upload(bucket, f"{folder}/{FOLDER_PLACEHOLDER}", b"", upsert=True)
    return redirect(url_of(bucket, folder + "/"), f"Folder {folder} created.")


@csrf_protect
async def move(request: Request) -> Response:
    bucket = _bucket(request)
    form = await request.form()
    source = _clean(f.text(form, "path", required=True, max_len=1024))
    destination = _clean(f.text(form, "destination", required=True, max_len=1024), "destination")
    await studio_of(request).admin.files.move(bucket, source, destination)
    return redirect(url_of(bucket, destination), f"Moved to {destination}.")


@csrf_protect
async def remove(request: Request) -> Response:
    bucket = _bucket(request)
    form = await request.form()
    path = _clean(f.text(form, "path", required=True, max_len=1024))
    removed = await studio_of(request).admin.files.remove(bucket, path)
    if not removed:
        raise HTTPException(404, f"no object {path!r} in bucket {bucket!r}")
    parent = path.rpartition("/")[0]
    return redirect(url_of(bucket, parent + "/" if parent else ""), f"Deleted {path}.")


@csrf_protect
async def sign(request: Request) -> Response:
    """A signed link, shown on the object's page (it grants access: it is not put in a redirect URL)."""
    bucket = _bucket(request)
    form = await request.form()
    path = _clean(f.text(form, "path", required=True, max_len=1024))
    seconds = f.integer(form, "expires_in", default=3600, lo=1, hi=365 * 86400)
    assert seconds is not None
    files = studio_of(request).admin.files
    signed = await files.signed_url(bucket, path, expires_in=seconds, download=f.checkbox(form, "download"))
    parent, _, name = path.rpartition("/")
    found = [e for e in await files.list(bucket, parent, search=name, limit=100) if e.name == name]
    if not found:
        raise HTTPException(404, f"no object {path!r} in bucket {bucket!r}")
    return render(request, "storage_object.html", {
        "bucket": bucket, "path": path, "file": found[0], "crumbs": _crumbs(bucket, parent + "/" if parent else ""),
        "signed": {"url": signed, "seconds": seconds}, "url_of": url_of,
    }, active="storage")


def _partial(request: Request) -> tuple[Path, int]:
    """The partial file of the chunked upload named by ``?id=`` and its size so far."""
    upload_id = f.text(request.query_params, "id", max_len=40)
    if not _UPLOAD_ID.match(upload_id):
        raise HTTPException(400, "id must be 32 hex digits")
    folder = Path(tempfile.gettempdir()) / "appkit-studio-uploads"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{upload_id}.part"
    return path, path.stat().st_size if path.exists() else 0


async def chunk_offset(request: Request) -> Response:
    """Where a chunked upload resumes: the bytes the server holds."""
    _bucket(request)
    _, size = _partial(request)
    return JSONResponse({"offset": size})


@csrf_protect
async def chunk(request: Request) -> Response:
    """Append one chunk at ``offset``; the last one (``offset + len == total``) stores the object."""
    bucket = _bucket(request)
    q = request.query_params
    partial, size = _partial(request)
    offset = f.integer(q, "offset", default=None, lo=0, hi=2**53)
    total = f.integer(q, "total", default=None, lo=1, hi=2**53)
    if offset is None or total is None:
        raise HTTPException(400, "offset and total are required")
    path = _clean(f.text(q, "path", required=True, max_len=1024))
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_CHUNK:
        raise HTTPException(413, f"a chunk is at most {MAX_CHUNK} bytes")
    if offset != size:
        return JSONResponse({"offset": size, "error": "offset mismatch"}, status_code=409)
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > MAX_CHUNK:
            raise HTTPException(413, f"a chunk is at most {MAX_CHUNK} bytes")
    if offset + len(data) > total:
        raise HTTPException(400, "the chunk runs past the declared total")
    with open(partial, "ab") as out:
        out.write(data)
    size = offset + len(data)
    if size < total:
        return JSONResponse({"offset": size})
    try:
        await studio_of(request).admin.files.upload(bucket, path, partial, upsert=f.checkbox(q, "upsert"),
                                                    content_type=mimetypes.guess_type(path)[0])
    finally:
        partial.unlink(missing_ok=True)
    return JSONResponse({"offset": size, "done": True, "path": path}, status_code=201,
                        headers={"location": url_of(bucket, path)})


PAGE = Page(name="storage", title="Storage", path="/storage", order=50, routes=[
    Route("/storage", index),
    Route("/storage", create_bucket, methods=["POST"]),
    Route("/storage/{bucket}/-/settings", bucket_settings, methods=["POST"]),
    Route("/storage/{bucket}/-/empty", empty_bucket, methods=["POST"]),
    Route("/storage/{bucket}/-/delete", delete_bucket, methods=["POST"]),
    Route("/storage/{bucket}/-/upload", upload, methods=["POST"]),
    Route("/storage/{bucket}/-/chunks", chunk_offset),
    Route("/storage/{bucket}/-/chunks", chunk, methods=["POST"]),
    Route("/storage/{bucket}/-/folder", new_folder, methods=["POST"]),
    Route("/storage/{bucket}/-/move", move, methods=["POST"]),
    Route("/storage/{bucket}/-/remove", remove, methods=["POST"]),
    Route("/storage/{bucket}/-/sign", sign, methods=["POST"]),
    Route("/storage/{bucket}", browse),
    Route("/storage/{bucket}/{path:path}", browse),
])
