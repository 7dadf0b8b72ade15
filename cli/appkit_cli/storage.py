"""``appkit storage``: buckets, and ls/cp/mv/rm on ``ss:///bucket/path`` paths as the Supabase CLI spells them."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from appkit_cli._common import (
    Format,
    OutputOption,
    ServiceKeyOption,
    UrlOption,
    WorkdirOption,
    admin_client,
    console,
    emit_json,
    err_console,
    fail,
    handle_errors,
)

if TYPE_CHECKING:
    from appkit import AppKit
    from appkit.files import Files

storage_app = typer.Typer(help="Storage: buckets, and ls/cp/mv/rm on ss:///bucket/path.", no_args_is_help=True)
buckets_app = typer.Typer(help="Buckets: list, create, update, delete.", no_args_is_help=True)
storage_app.add_typer(buckets_app, name="buckets")

SCHEME = "ss://"
LARGE = 6 * 1024 * 1024  # above this, uploads are resumable (TUS), as Supabase's clients do
PAGE = 1000
#: cp's parallel transfers unless -j: a tree of small files is bound by the server's per-file latency
#: (fsyncs), which overlapping hides (rclone's default --transfers is 4; docs/admin.md)
DEFAULT_JOBS = 4

RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Work on everything under the path.")]


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # "" for the bucket root; no leading or trailing slash
    folder: bool = False  # written with a trailing slash: a folder even if it does not exist yet

    def __str__(self) -> str:
        return f"ss:///{self.bucket}/{self.prefix}"

    def key(self, *parts: str) -> str:
        return str(PurePosixPath(self.prefix, *parts)) if self.prefix or parts else ""


def is_remote(path: str) -> bool:
    return path.startswith(SCHEME)


def parse_remote(path: str) -> Remote:
    """``ss:///bucket/prefix`` -> Remote; anything else fails with the Supabase CLI's pattern."""
    if not path.startswith("ss:///"):
        raise fail(f"invalid storage path {path!r}: use ss:///bucket/[prefix]")
    rest = path[len("ss:///"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise fail(f"invalid storage path {path!r}: use ss:///bucket/[prefix]")
    if any(p in (".", "..") for p in prefix.split("/")) or "//" in prefix:
        raise fail(f"invalid storage path {path!r}: empty or dot segment")
    return Remote(bucket, prefix.rstrip("/"), folder=prefix.endswith("/"))


def _client(workdir: Path | None, url: str | None, key: str | None) -> AppKit:
    return admin_client(workdir, url, key)


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*", text.lower())
    if not match:
        raise fail(f"invalid size {text!r}: e.g. 5242880, 500KB, 10MB, 1GB")
    return int(match.group(1)) * {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}[match.group(2) or "b"]


def _mimes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [m.strip() for m in text.split(",") if m.strip()]
    for m in items:
        if not re.fullmatch(r"[\w.+-]+/[\w.+*-]+", m):
            raise fail(f"invalid MIME type {m!r}")
    return items


# buckets -------------------------------------------------------------------------
@buckets_app.command("list")
@handle_errors
def buckets_list(workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
                 output: OutputOption = Format.pretty) -> None:
    """List buckets."""
    with _client(workdir, url, service_role_key) as app:
        buckets = app.admin.files.list_buckets()
    rows = [{"id": b.id, "name": b.name, "public": b.public, "file_size_limit": b.file_size_limit,
             "allowed_mime_types": b.allowed_mime_types, "created_at": str(b.created_at)} for b in buckets]
    if output is Format.json:
        emit_json(rows)
        return
    table = Table("name", "public", "file size limit", "allowed MIME types", "created")
    for r in rows:
        table.add_row(str(r["name"]), "yes" if r["public"] else "no", str(r["file_size_limit"] or ""),
                      ", ".join(r["allowed_mime_types"] or []), str(r["created_at"])[:19])  # type: ignore[arg-type]
    console.print(table)


PublicOption = Annotated[bool | None, typer.Option("--public/--private", show_default=False,
                                                   help="Anyone may read its objects by URL.")]
LimitOption = Annotated[str | None, typer.Option("--file-size-limit", show_default=False,
                                                 help="Largest object, e.g. 10MB.")]
MimeOption = Annotated[str | None, typer.Option("--allowed-mime-types", show_default=False,
                                                help="Comma-separated, e.g. image/png,image/*.")]


@buckets_app.command("create")
@handle_errors
def buckets_create(name: Annotated[str, typer.Argument(help="Bucket name.", show_default=False)],
                   public: PublicOption = None, file_size_limit: LimitOption = None,
                   allowed_mime_types: MimeOption = None, workdir: WorkdirOption = None, url: UrlOption = None,
                   service_role_key: ServiceKeyOption = None) -> None:
    """Create a bucket."""
    limit, mimes = _size(file_size_limit), _mimes(allowed_mime_types)
    with _client(workdir, url, service_role_key) as app:
        app.admin.files.create_bucket(name, public=bool(public), file_size_limit=limit, allowed_mime_types=mimes)
    console.print(f"Created bucket {name}.")


@buckets_app.command("update")
@handle_errors
def buckets_update(name: Annotated[str, typer.Argument(help="Bucket name.", show_default=False)],
                   public: PublicOption = None, file_size_limit: LimitOption = None,
                   allowed_mime_types: MimeOption = None, workdir: WorkdirOption = None, url: UrlOption = None,
                   service_role_key: ServiceKeyOption = None) -> None:
    """Change a bucket's visibility or limits."""
    if public is None and file_size_limit is None and allowed_mime_types is None:
        raise fail("nothing to update: give --public/--private, --file-size-limit or --allowed-mime-types")
    limit, mimes = _size(file_size_limit), _mimes(allowed_mime_types)
    with _client(workdir, url, service_role_key) as app:
        app.admin.files.update_bucket(name, public=public, file_size_limit=limit, allowed_mime_types=mimes)
    console.print(f"Updated bucket {name}.")


@buckets_app.command("delete")
@handle_errors
def buckets_delete(name: Annotated[str, typer.Argument(help="Bucket name.", show_default=False)],
                   force: Annotated[bool, typer.Option("--force", help="Empty it first.")] = False,
                   workdir: WorkdirOption = None, url: UrlOption = None,
                   service_role_key: ServiceKeyOption = None) -> None:
    """Delete a bucket (it must be empty, unless --force)."""
    with _client(workdir, url, service_role_key) as app:
        files = app.admin.files
        files.get_bucket(name)
        if force:
            files.empty_bucket(name)
        elif files.list(name, limit=1):
            raise fail(f"bucket {name} is not empty (use --force to delete its objects too)")
        files.delete_bucket(name)
    console.print(f"Deleted bucket {name}.")


# objects -------------------------------------------------------------------------
def _walk(files: Files, bucket: str, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object under ``prefix`` (recursively): (key, listing entry)."""
    offset = 0
    while True:
        page = files.list(bucket, prefix, limit=PAGE, offset=offset)
        for entry in page:
            key = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_folder:
                yield from _walk(files, bucket, key)
            else:
                yield key, {"size": entry.size, "content_type": entry.content_type,
                            "updated_at": str(entry.updated_at) if entry.updated_at else None}
        if len(page) < PAGE:
            return
        offset += PAGE


def _is_folder(files: Files, remote: Remote) -> bool:
    return not remote.prefix or remote.folder or bool(files.list(remote.bucket, remote.prefix, limit=1))


def _exists(files: Files, bucket: str, key: str) -> bool:
    parent, _, name = key.rpartition("/")
    return any(e.name == name and not e.is_folder for e in files.list(bucket, parent, search=name, limit=PAGE))


@storage_app.command("ls")
@handle_errors
def ls(path: Annotated[str | None, typer.Argument(help="ss:///bucket/prefix (none: the buckets).",
                                                  show_default=False)] = None,
       recursive: RecursiveOption = False, workdir: WorkdirOption = None, url: UrlOption = None,
       service_role_key: ServiceKeyOption = None, output: OutputOption = Format.pretty) -> None:
    """List buckets, or the objects and folders under a path."""
    remote = parse_remote(path) if path else None
    with _client(workdir, url, service_role_key) as app:
        files = app.admin.files
        if remote is None:
            names = [f"{b.name}/" for b in files.list_buckets()]
            rows: list[dict[str, Any]] = [{"name": n} for n in names]
        else:
            files.get_bucket(remote.bucket)
            if recursive:
                rows = [{"name": k, **meta} for k, meta in _walk(files, remote.bucket, remote.prefix)]
            else:
                rows = []
                offset = 0
                while True:
                    page = files.list(remote.bucket, remote.prefix, limit=PAGE, offset=offset)
                    rows += [{"name": e.name + ("/" if e.is_folder else ""), "size": e.size,
                              "content_type": e.content_type,
                              "updated_at": str(e.updated_at) if e.updated_at else None} for e in page]
                    if len(page) < PAGE:
                        break
                    offset += PAGE
    if output is Format.json:
        emit_json(rows)
        return
    for r in rows:
        console.print(r["name"], highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Transfer:
    local: Path
    bucket: str
    key: str
    size: int


class Bar:
    """Byte progress of a set of transfers on stderr (a terminal only), safe from worker threads."""

    def __init__(self, total: int, files: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TextColumn("{task.fields[files]}"), TimeRemainingColumn(), console=err_console,
                                 disable=not err_console.is_terminal, transient=True)
        self.task = self.progress.add_task(label, total=total, files=f"0/{files} files")
        self.files, self.done_files, self.done = files, 0, 0
        self.lock = threading.Lock()

    def add(self, nbytes: int, finished: bool = False) -> None:
        with self.lock:
            self.done += nbytes
            if finished:
                self.done_files += 1
            self.progress.update(self.task, completed=self.done, files=f"{self.done_files}/{self.files} files")

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _run(jobs: int, items: list[Transfer], one: Callable[[Transfer], None], what: str) -> None:
    """Run ``one`` over ``items`` with ``jobs`` threads; the first failure stops the rest (one line)."""
    done = 0
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(one, t) for t in items]
        try:
            for f in futures:
                f.result()
                done += 1
        except BaseException as exc:
            for f in futures:
                f.cancel()
            from appkit.errors import AppKitError

            if isinstance(exc, AppKitError):
                exc.message = f"{exc.message} ({done} of {len(items)} {what} done)"
            raise


def _state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "appkit" / "uploads"


def _state_file(base_url: str, t: Transfer) -> Path:
    st = t.local.stat()
    ident = json.dumps([base_url, str(t.local.resolve()), st.st_size, st.st_mtime_ns, t.bucket, t.key])
    return _state_dir() / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")


def _upload(app: AppKit, t: Transfer, bar: Bar, *, content_type: str | None, cache_control: int | None) -> None:
    kind = content_type or mimetypes.guess_type(t.local.name)[0] or "application/octet-stream"
    files = app.admin.files
    if t.size <= LARGE:
        files.upload(t.bucket, t.key, t.local, content_type=kind, upsert=True, cache_control=cache_control)
        bar.add(t.size, finished=True)
        return
    state = _state_file(app.settings.url, t)
    resume_url: str | None = None
    try:
        resume_url = json.loads(state.read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        resume_url = None
    sent = [0]

    def remember(url: str) -> None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"url": url}))

    def progress(done: int, total: int) -> None:
        if sent[0] == 0 and done > 0 and resume_url:
            err_console.print(f"Resuming {t.local} at byte {done} of {total}.", highlight=False, soft_wrap=True)
        bar.add(done - sent[0])
        sent[0] = done

    files.upload_resumable(t.bucket, t.key, t.local, content_type=kind, upsert=True, cache_control=cache_control,
                           on_progress=progress, resume_url=resume_url, on_url=remember)
    state.unlink(missing_ok=True)
    bar.add(0, finished=True)


def _cache_seconds(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(?:max-age=)?(\d+)", text.strip())
    if not match:
        raise fail(f"invalid --cache-control {text!r}: use max-age=SECONDS")
    return int(match.group(1))


def _plan_upload(files: Files, src: Path, dst: Remote, recursive: bool) -> list[Transfer]:
    if not src.exists():
        raise fail(f"{src}: no such file or directory")
    files.get_bucket(dst.bucket)  # NotFound before anything moves
    if src.is_dir():
        if not recursive:
            raise fail(f"{src} is a directory (use -r)")
        base = dst.key(src.resolve().name) if _is_folder(files, dst) else dst.prefix
        items = []
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src).as_posix()
            items.append(Transfer(path, dst.bucket, f"{base}/{rel}" if base else rel, path.stat().st_size))
        if not items:
            raise fail(f"{src} holds no files")
        return items
    key = dst.key(src.name) if (not dst.prefix or _is_folder(files, dst)) else dst.prefix
    return [Transfer(src, dst.bucket, key, src.stat().st_size)]


def _plan_download(files: Files, src: Remote, dst: Path, recursive: bool) -> list[Transfer]:
    files.get_bucket(src.bucket)
    if recursive:
        objects = list(_walk(files, src.bucket, src.prefix))
        if not objects:
            raise fail(f"nothing under {src}")
        root = dst / PurePosixPath(src.prefix).name if dst.is_dir() and src.prefix else dst
        out = []
        for key, meta in objects:
            rel = key[len(src.prefix):].lstrip("/") if src.prefix else key
            out.append(Transfer(root / rel, src.bucket, key, int(meta["size"] or 0)))
        return out
    if not src.prefix or not _exists(files, src.bucket, src.prefix):
        if src.prefix and _is_folder(files, src):
            raise fail(f"{src} is a folder (use -r)")
        raise fail(f"no object at {src}")
    target = dst / PurePosixPath(src.prefix).name if dst.is_dir() else dst
    return [Transfer(target, src.bucket, src.prefix, 0)]


@storage_app.command("cp")
@handle_errors
def cp(
    src: Annotated[str, typer.Argument(help="A local path or ss:///bucket/path.", show_default=False)],
    dst: Annotated[str, typer.Argument(help="A local path or ss:///bucket/path.", show_default=False)],
    recursive: RecursiveOption = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64,
                                      help="Parallel transfers (the Supabase CLI's default is 1).")] = DEFAULT_JOBS,
    cache_control: Annotated[str | None, typer.Option(help="max-age=SECONDS for uploads (default: 3600).",
                                                      show_default=False)] = None,
    content_type: Annotated[str | None, typer.Option(help="Content-Type for uploads (default: from the name).",
                                                     show_default=False)] = None,
    workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None,
) -> None:
    """Copy files up, down, or within a bucket; large uploads are resumable (run the same command again)."""
    cache = _cache_seconds(cache_control)
    if not is_remote(src) and not is_remote(dst):
        raise fail("one of SRC and DST must be an ss:///bucket/path")
    with _client(workdir, url, service_role_key) as app:
        files = app.admin.files
        if is_remote(src) and is_remote(dst):
            s, d = parse_remote(src), parse_remote(dst)
            if s.bucket != d.bucket:
                raise fail("copying between buckets is not supported: download and upload instead")
            pairs = _plan_remote(files, s, d, recursive)
            _run(jobs, [Transfer(Path(), s.bucket, k, 0) for k, _ in pairs],
                 lambda t: files.copy(s.bucket, t.key, dict(pairs)[t.key]), "objects")
            console.print(f"Copied {len(pairs)} object(s).")
            return
        if is_remote(dst):
            items = _plan_upload(files, Path(src), parse_remote(dst), recursive)
            with Bar(sum(t.size for t in items), len(items), "uploading") as bar:
                _run(jobs, items, lambda t: _upload(app, t, bar, content_type=content_type, cache_control=cache),
                     "files")
            console.print(f"Uploaded {len(items)} file(s), {sum(t.size for t in items):,} bytes.")
            return
        items = _plan_download(files, parse_remote(src), Path(dst), recursive)
        with Bar(sum(t.size for t in items), len(items), "downloading") as bar:
            def down(t: Transfer) -> None:
                t.local.parent.mkdir(parents=True, exist_ok=True)
                last = [0]

                def progress(done: int, total: int) -> None:
                    bar.add(done - last[0])
                    last[0] = done

                files.download_to(t.bucket, t.key, t.local, on_progress=progress)
                bar.add(0, finished=True)

            _run(jobs, items, down, "files")
        console.print(f"Downloaded {len(items)} file(s).")


def _plan_remote(files: Files, src: Remote, dst: Remote, recursive: bool) -> list[tuple[str, str]]:
    files.get_bucket(src.bucket)
    if recursive:
        keys = [k for k, _ in _walk(files, src.bucket, src.prefix)]
        if not keys:
            raise fail(f"nothing under {src}")
        return [(k, dst.key(k[len(src.prefix):].lstrip("/")) if src.prefix else dst.key(k)) for k in keys]
    if not src.prefix or not _exists(files, src.bucket, src.prefix):
        raise fail(f"no object at {src}" + (" (use -r for a folder)" if src.prefix and _is_folder(files, src)
                                            else ""))
    target = dst.key(PurePosixPath(src.prefix).name) if (not dst.prefix or _is_folder(files, dst)) else dst.prefix
    return [(src.prefix, target)]


@storage_app.command("mv")
@handle_errors
def mv(src: Annotated[str, typer.Argument(help="ss:///bucket/path.", show_default=False)],
       dst: Annotated[str, typer.Argument(help="ss:///bucket/path (same bucket).", show_default=False)],
       recursive: RecursiveOption = False, jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64,
                                                                            help="Parallel moves.")] = 1,
       workdir: WorkdirOption = None, url: UrlOption = None, service_role_key: ServiceKeyOption = None) -> None:
    """Move objects within a bucket."""
    s, d = parse_remote(src), parse_remote(dst)
    if s.bucket != d.bucket:
        raise fail("moving between buckets is not supported: copy down and up instead")
    with _client(workdir, url, service_role_key) as app:
        files = app.admin.files
        pairs = _plan_remote(files, s, d, recursive)
        moves = dict(pairs)
        _run(jobs, [Transfer(Path(), s.bucket, k, 0) for k, _ in pairs],
             lambda t: files.move(s.bucket, t.key, moves[t.key]), "objects")
    console.print(f"Moved {len(pairs)} object(s).")


@storage_app.command("rm")
@handle_errors
def rm(paths: Annotated[list[str], typer.Argument(help="ss:///bucket/path ...", show_default=False)],
       recursive: RecursiveOption = False, workdir: WorkdirOption = None, url: UrlOption = None,
       service_role_key: ServiceKeyOption = None) -> None:
    """Remove objects (with -r, everything under a folder)."""
    remotes = [parse_remote(p) for p in paths]
    with _client(workdir, url, service_role_key) as app:
        files = app.admin.files
        plan: dict[str, list[str]] = {}
        for r in remotes:  # every path is checked before anything is removed
            files.get_bucket(r.bucket)
            if recursive:
                keys = [k for k, _ in _walk(files, r.bucket, r.prefix)]
                if not keys:
                    raise fail(f"nothing under {r}")
            else:
                if not r.prefix or not _exists(files, r.bucket, r.prefix):
                    hint = " (use -r for a folder)" if r.prefix and _is_folder(files, r) else ""
                    raise fail(f"no object at {r}{hint}")
                keys = [r.prefix]
            plan.setdefault(r.bucket, []).extend(keys)
        removed = 0
        for bucket, keys in plan.items():
            for start in range(0, len(keys), PAGE):
                removed += len(files.remove(bucket, keys[start:start + PAGE]))
    console.print(f"Removed {removed} object(s).")
