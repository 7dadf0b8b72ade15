"""Buckets from config.toml and crash recovery at startup, on a stack of its own (restarted once)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from storage3.exceptions import StorageApiError

from tests.storage_support import sync_client
from tests.support import start_stack, write_project

pytestmark = pytest.mark.integration

EXTRA = """
[storage]
file_size_limit = "1MiB"

[storage.buckets.cfg-images]
public = true
file_size_limit = "100KiB"
allowed_mime_types = ["image/png", "image/*"]

[storage.buckets.cfg-private]
objects_path = "./seed-files"
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("storage-recovery")
    write_project(path, extra_config=EXTRA)
    seed = path / "supabase" / "seed-files"
    (seed / "docs").mkdir(parents=True)
    (seed / "docs" / "readme.md").write_text("# seeded")
    (seed / "logo.png").write_bytes(b"\x89PNG fake")
    return path


def test_config_buckets_and_orphan_cleanup(workdir: Path) -> None:
    storage_dir = workdir / "supabase" / ".appkit" / "storage"
    stack = start_stack(workdir)
    try:
        admin = sync_client(stack, stack.service_role_key)
        images = admin.get_bucket("cfg-images")
        assert (images.public, images.file_size_limit, images.allowed_mime_types) == (
            True, 100 * 1024, ["image/png", "image/*"])
        private = admin.get_bucket("cfg-private")
        assert (private.public, private.file_size_limit) == (False, None)
        with pytest.raises(StorageApiError) as exc:
            admin.from_("cfg-private").upload("too-big.bin", b"x" * (1024 * 1024 + 1))
        assert str(exc.value.status) == "413"  # the global [storage] file_size_limit
        with pytest.raises(StorageApiError) as exc:
            admin.from_("cfg-images").upload("a.txt", b"x", {"content-type": "text/plain"})
        assert str(exc.value.status) == "415"
        seeded = admin.from_("cfg-private")
        assert seeded.download("docs/readme.md") == b"# seeded"
        assert seeded.info("logo.png")["content_type"] == "image/png"
        admin.from_("cfg-private").upload("keep.txt", b"kept")
        admin.from_("cfg-private").upload("lose-file.txt", b"file will vanish")
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute("insert into storage.objects (bucket_id, name) values ('cfg-private', 'sql-made-row')")
            version = conn.execute("select version from storage.objects where name = 'lose-file.txt'").fetchone()
    finally:
        stack.stop()
    assert version is not None
    # simulate a crash: a half-written temp file, a renamed file whose row never committed, a lost file
    (storage_dir / "tmp" / "deadbeef.part").write_bytes(b"partial")
    orphan = storage_dir / "objects" / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"no row for me")
    (storage_dir / "objects" / version[0][:2] / version[0]).unlink()

    stack = start_stack(workdir)
    try:
        assert not any((storage_dir / "tmp").iterdir())
        assert not orphan.exists()
        admin = sync_client(stack, stack.service_role_key)
        f = admin.from_("cfg-private")
        assert f.download("keep.txt") == b"kept"
        assert f.exists("lose-file.txt") is False
        names = {o["name"] for o in f.list()}
        assert "sql-made-row" in names and "keep.txt" in names  # rows made by SQL are not ours to delete
        # config buckets are re-applied on start (updated, not duplicated)
        assert [b.id for b in admin.list_buckets()].count("cfg-images") == 1
    finally:
        stack.stop()
