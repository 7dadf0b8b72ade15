"""Direct-Postgres pieces: the migration runner and SQL helpers."""

from appkit.db.migrations import (
    AppliedMigration,
    Migration,
    MigrationPlan,
    MigrationRunner,
    MigrationStatus,
    discover_migrations,
)
from appkit.db.split import Statement, split_statements

__all__ = [
    "AppliedMigration",
    "Migration",
    "MigrationPlan",
    "MigrationRunner",
    "MigrationStatus",
    "Statement",
    "discover_migrations",
    "split_statements",
]
