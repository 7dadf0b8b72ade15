"""appkit's bundled migrations: listed in order, copied into a project once, after its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from appkit.db.bundled import BUNDLED_RE, bundled_migrations, copy_missing, project_copies


def test_bundled_files_are_ordered_and_named() -> None:
    found = bundled_migrations()
    assert found, "no bundled migrations found"
    assert [b.seq for b in found] == sorted(b.seq for b in found)
    assert len({b.seq for b in found}) == len(found), "two bundled files share a sequence number"
    assert found[0].key == "appkit_0001_base"
    assert all(BUNDLED_RE.match(f"{b.seq}_{b.name}.sql") for b in found)


def test_copy_missing_copies_once_after_existing(tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "20991231235959_late_user_migration.sql").write_text("select 1;")
    (mig / "not_a_timestamp.sql").write_text("select 1;")
    written = copy_missing(mig, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert len(written) == len(bundled_migrations())
    versions = [p.name.split("_", 1)[0] for p in written]
    assert versions[0] == "21000101000000"  # one second after the latest existing migration
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert set(project_copies(mig)) == {b.key for b in bundled_migrations()}
    assert written[0].read_text() == bundled_migrations()[0].sql
    assert copy_missing(mig) == []  # nothing twice
