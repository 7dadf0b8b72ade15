"""appkit's bundled migrations: the ``sql/`` files shipped in the wheel, and their project copies.

A bundled file is ``NNNN_<name>.sql``; in a project it is copied to
``supabase/migrations/<timestamp>_appkit_NNNN_<name>.sql`` (a Supabase-CLI name), so the
copy is recognised by its name whatever timestamp it got.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from appkit.errors import ConfigError

BUNDLED_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
PROJECT_RE = re.compile(r"^(\d+)_appkit_(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class BundledMigration:
    """One of appkit's own migrations, as shipped."""

    seq: str
    name: str
    sql: str

    @property
    def key(self) -> str:
        """``appkit_NNNN_<name>``: the migration's name in a project (and in the migration history)."""
        return f"appkit_{self.seq}_{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def project_filename(self, version: str) -> str:
        return f"{version}_{self.key}.sql"


def sql_root() -> Traversable:
    """The folder holding the bundled files: ``appkit/sql`` in a wheel, ``sql/`` in a checkout."""
    packaged = resources.files("appkit") / "sql"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "sql"
    if checkout.is_dir():
        return checkout
    raise ConfigError("appkit's SQL migrations are missing from this installation (appkit/sql)")


def bundled_migrations() -> list[BundledMigration]:
    """Every bundled migration, in sequence order."""
    found = []
    for entry in sql_root().iterdir():
        m = BUNDLED_RE.match(entry.name)
        if m:
            found.append(BundledMigration(m.group(1), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda b: b.seq)


def project_copies(migrations_dir: Path) -> dict[str, Path]:
    """The bundled migrations a project folder already has, by key (``appkit_NNNN_<name>``)."""
    copies: dict[str, Path] = {}
    if migrations_dir.is_dir():
        for path in sorted(migrations_dir.glob("*.sql")):
            m = PROJECT_RE.match(path.name)
            if m:
                copies[f"appkit_{m.group(2)}_{m.group(3)}"] = path
    return copies


def copy_missing(migrations_dir: Path, *, now: datetime | None = None) -> list[Path]:
    """Copy the bundled migrations ``migrations_dir`` lacks, with timestamp versions after every
    existing migration (so the Supabase CLI applies them last, in sequence order)."""
    have = project_copies(migrations_dir)
    todo = [b for b in bundled_migrations() if b.key not in have]
    if not todo:
        return []
    stamp = (now or datetime.now(UTC)).replace(microsecond=0, tzinfo=None)
    for path in migrations_dir.glob("*.sql"):
        try:
            version = datetime.strptime(path.name.split("_", 1)[0], "%Y%m%d%H%M%S")
        except ValueError:  # not a timestamp version: it does not constrain ours
            continue
        stamp = max(stamp, version + timedelta(seconds=1))
    migrations_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, b in enumerate(todo):
        path = migrations_dir / b.project_filename((stamp + timedelta(seconds=i)).strftime("%Y%m%d%H%M%S"))
        path.write_text(b.sql, encoding="utf-8")
        written.append(path)
    return written
