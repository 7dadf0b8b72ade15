"""Apply ``supabase/migrations/<version>_<name>.sql`` files as the Supabase CLI does.

Each file runs in its own transaction and is recorded in
``supabase_migrations.schema_migrations (version, name, statements)`` exactly like the
CLI, so ``appkit db`` and ``supabase db``/``supabase migration`` agree on what is
applied. A session advisory lock serialises concurrent runners; after taking it the
runner re-reads the history, so every file is applied once. A file whose statements
differ from what was recorded when it was applied is reported as drift. A failing file
is rolled back and the run stops with the file, line and Postgres error.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from appkit.db.connect import connect
from appkit.db.split import Statement, split_statements
from appkit.errors import ConfigError, MigrationDriftError, MigrationError

log = logging.getLogger("appkit.db")

MIGRATION_RE = re.compile(r"^(\d+)_(.*)\.sql$")
#: pg_advisory_lock key shared by every appkit migration runner ("appkit:migrations").
LOCK_KEY = 0x61707069_6D696772

_HISTORY_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text not null primary key,
  statements text[],
  name text
);
create table if not exists supabase_migrations.seed_files (
  path text not null primary key,
  hash text not null
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    statements: tuple[Statement, ...]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.statements]

    @classmethod
    def from_file(cls, path: Path) -> Migration:
        m = MIGRATION_RE.match(path.name)
        if not m:
            raise ConfigError(f"{path}: migration file names must look like <version>_<name>.sql")
        try:
            sql = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        return cls(version=m.group(1), name=m.group(2), path=path, statements=tuple(split_statements(sql)))


@dataclass(frozen=True)
class AppliedMigration:
    version: str
    name: str | None
    statements: tuple[str, ...] | None


@dataclass(frozen=True)
class MigrationStatus:
    version: str
    name: str
    local: bool
    applied: bool
    drift: bool

    @property
    def state(self) -> str:
        if self.drift:
            return "drift"
        if self.applied and not self.local:
            return "remote only"
        return "applied" if self.applied else "pending"


@dataclass(frozen=True)
class MigrationPlan:
    pending: list[Migration]
    drifted: list[Migration]


#: the Supabase CLI's notice for a file in supabase/migrations it does not apply
SKIP_WARNING = 'Skipping migration {name}... (file name must match pattern "<timestamp>_name.sql")'
#: ... and for a pre-2021-12-09 ``<timestamp>_init.sql`` listed first (older CLIs' initial schema)
SKIP_INIT_WARNING = 'Skipping migration {name}... (replace "init" with a different file name to apply this migration)'
_INIT_RE = re.compile(r"([0-9]{14})_init\.sql")


def discover_migrations(directory: Path) -> list[Migration]:
    """The migration files in ``directory`` in the Supabase CLI's order: by file name (so
    ``10_b.sql`` runs before ``9_a.sql``, as ``supabase db push`` does).

    A file whose name does not match ``<version>_<name>.sql`` is skipped with the CLI's
    warning (logged, so ``appkit`` shows it on stderr), as is a pre-2021-12-09
    ``<timestamp>_init.sql`` listed first. Two files with the same version are both kept:
    applying the second one fails as it does under the CLI (the version is already in the
    history table).
    """
    if not directory.exists():
        return []
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    found: list[Migration] = []
    for i, path in enumerate(sorted(directory.iterdir(), key=lambda p: p.name.encode())):
        if path.is_dir():
            continue
        init = _INIT_RE.search(path.name)
        if i == 0 and init is not None and int(init.group(1)) < 20211209000000:
            log.warning(SKIP_INIT_WARNING.format(name=path.name))
            continue
        if not MIGRATION_RE.match(path.name):
            log.warning(SKIP_WARNING.format(name=path.name))
            continue
        found.append(Migration.from_file(path))
    return found


_NO_TRANSACTION = re.compile(
    r"(vacuum|create\s+(unique\s+)?index\s+concurrently|drop\s+index\s+concurrently|reindex\b.*\bconcurrently"
    r"|reindex\s+(system|database)|alter\s+system|(create|drop)\s+(database|tablespace)"
    r"|alter\s+database\s+\S+\s+set\s+tablespace)\b",
    re.IGNORECASE | re.DOTALL,
)
_LEADING_COMMENTS = re.compile(r"\A(\s+|--[^\n]*(\n|\Z)|/\*.*?\*/)*", re.DOTALL)


def outside_transaction(sql: str) -> bool:
    """Whether a statement is one PostgreSQL refuses inside a transaction block (VACUUM,
    CREATE INDEX CONCURRENTLY, ALTER SYSTEM, CREATE DATABASE, ...)."""
    return _NO_TRANSACTION.match(sql, _LEADING_COMMENTS.match(sql).end()) is not None  # type: ignore[union-attr]


def _error_line(stmt: Statement, exc: psycopg.Error) -> int:
    pos = exc.diag.statement_position
    if pos and pos.isdigit():
        return stmt.line + stmt.text.count("\n", 0, int(pos) - 1)
    return stmt.line


def _describe(exc: psycopg.Error) -> str:
    msg = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    return f"{exc.sqlstate}: {msg}" if exc.sqlstate else msg


class MigrationRunner:
    """Applies migrations and seeds to the database at ``conninfo`` (any Postgres URL)."""

    def __init__(self, conninfo: str, *, connect_timeout: int = 10) -> None:
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        conn = connect(self.conninfo, autocommit=True, timeout=self.connect_timeout)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with self._connect() as conn:
            conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))

    @staticmethod
    def _history(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, AppliedMigration]:
        exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return {}
        rows = conn.execute("select version, name, statements from supabase_migrations.schema_migrations").fetchall()
        out: dict[str, AppliedMigration] = {}
        for v, n, s in rows:
            stmts = tuple(str(x) for x in s) if isinstance(s, list) else None
            out[str(v)] = AppliedMigration(str(v), None if n is None else str(n), stmts)
        return out

    @staticmethod
    def _drifted(local: Migration, applied: AppliedMigration) -> bool:
        if applied.name is not None and applied.name != local.name:
            return False  # another file of the same version (repeated version) was applied
        return applied.statements is not None and list(applied.statements) != local.texts

    def applied(self) -> dict[str, AppliedMigration]:
        with self._connect() as conn:
            return self._history(conn)

    def status(self, migrations: Sequence[Migration]) -> list[MigrationStatus]:
        history = self.applied()
        local = {m.version: m for m in migrations}
        out = [
            MigrationStatus(
                m.version, m.name, local=True, applied=m.version in history,
                drift=m.version in history and self._drifted(m, history[m.version]),
            )
            for m in migrations
        ]
        out += [
            MigrationStatus(v, a.name or "", local=False, applied=True, drift=False)
            for v, a in history.items() if v not in local
        ]
        return sorted(out, key=lambda s: (int(s.version) if s.version.isdigit() else 0, s.version))

    def plan(self, migrations: Sequence[Migration]) -> MigrationPlan:
        history = self.applied()
        return MigrationPlan(
            pending=[m for m in migrations if m.version not in history],
            drifted=[m for m in migrations if m.version in history and self._drifted(m, history[m.version])],
        )

    def apply(self, migrations: Sequence[Migration], *, allow_drift: bool = False) -> list[Migration]:
        """Apply the pending ``migrations`` in order; return the ones applied by this call.

        Drift (an applied file changed on disk) raises, or with ``allow_drift`` is logged
        as a warning and the pending files are applied anyway.
        """
        done: list[Migration] = []
        with self._locked() as conn:
            conn.execute(_HISTORY_DDL)
            history = self._history(conn)
            drifted = [m for m in migrations if m.version in history and self._drifted(m, history[m.version])]
            names = ", ".join(m.path.name for m in drifted)
            if drifted and allow_drift:
                log.warning("applied migrations changed on disk (run `appkit db status`): %s", names)
            elif drifted:
                raise MigrationDriftError(
                    f"applied migration(s) changed on disk: {names}; restore them, or add a new migration "
                    "for the change",
                    file=str(drifted[0].path),
                    code="migration_drift",
                )
            for mig in migrations:
                if mig.version in history:
                    continue
                self._apply_one(conn, mig)
                done.append(mig)
        return done

    def _apply_one(self, conn: psycopg.Connection[tuple[object, ...]], mig: Migration) -> None:
        stmt: Statement | None = None
        try:
            with conn.transaction(), conn.cursor() as cur:
                for stmt in mig.statements:
                    cur.execute(stmt.text.encode())
                stmt = None
                cur.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements) "
                    "values (%s, %s, %s)",
                    (mig.version, mig.name, mig.texts),
                )
        except psycopg.errors.UniqueViolation as exc:
            if stmt is not None:
                raise self._failed(mig, stmt, exc) from None
            # the Supabase CLI's report of a repeated version (the history insert fails)
            raise MigrationError(
                f"{mig.path.name}: ERROR: {exc.diag.message_primary} (SQLSTATE {exc.sqlstate}) "
                f"{exc.diag.message_detail or ''} (another migration file has version {mig.version}; "
                "the file was rolled back)",
                file=str(mig.path), line=1, code=exc.sqlstate,
                hint="give each migration file its own version (`appkit db new` or `supabase migration new`)",
            ) from None
        except psycopg.Error as exc:
            raise self._failed(mig, stmt, exc) from None

    @staticmethod
    def _failed(mig: Migration, stmt: Statement | None, exc: psycopg.Error) -> MigrationError:
        line = _error_line(stmt, exc) if stmt is not None else 1
        return MigrationError(
            f"{mig.path.name}:{line}: {_describe(exc)} (the file was rolled back)",
            file=str(mig.path), line=line, code=exc.sqlstate,
            hint=exc.diag.message_hint,
        )

    def seed(self, paths: Sequence[Path], *, only_if_unseeded: bool = False) -> list[Path]:
        """Run seed files, all in one transaction; record their hashes. Returns the files run.

        Statements ending a file that cannot run in a transaction block (a closing ``VACUUM
        ANALYZE``, say) run once that transaction has committed, each on its own, so a seed
        written for Supabase applies.

        With ``only_if_unseeded`` nothing runs once any seed was recorded (first start).
        """
        files: list[tuple[Path, str, list[Statement]]] = []
        for p in paths:
            try:
                text = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{p}: cannot read seed file: {exc}") from None
            files.append((p, hashlib.sha256(text.encode()).hexdigest(), split_statements(text)))
        if not files:
            return []
        # statements that cannot run in a transaction block (VACUUM, ...) ending a file run
        # after the seed's transaction commits
        after: list[tuple[Path, Statement]] = []
        for path, _, statements in files:
            keep = len(statements)
            while keep and outside_transaction(statements[keep - 1].text):
                keep -= 1
            after += [(path, st) for st in statements[keep:]]
            del statements[keep:]
        with self._locked() as conn:
            conn.execute(_HISTORY_DDL)
            if only_if_unseeded and conn.execute("select exists (select 1 from supabase_migrations.seed_files)") \
                    .fetchone() == (True,):
                return []
            current_path: Path = files[0][0]
            current_stmt: Statement | None = None
            try:
                with conn.transaction(), conn.cursor() as cur:
                    for path, digest, statements in files:
                        for st in statements:
                            current_path, current_stmt = path, st
                            cur.execute(st.text.encode())
                        cur.execute(
                            "insert into supabase_migrations.seed_files (path, hash) values (%s, %s) "
                            "on conflict (path) do update set hash = excluded.hash",
                            (path.name, digest),
                        )
            except psycopg.Error as exc:
                line = _error_line(current_stmt, exc) if current_stmt is not None else 1
                raise MigrationError(
                    f"{current_path.name}:{line}: {_describe(exc)} (the seed was rolled back)",
                    file=str(current_path), line=line, code=exc.sqlstate, hint=exc.diag.message_hint,
                ) from None
            for path, st in after:
                try:
                    conn.execute(st.text.encode())
                except psycopg.Error as exc:
                    line = _error_line(st, exc)
                    raise MigrationError(
                        f"{path.name}:{line}: {_describe(exc)} (the seed's other statements were committed)",
                        file=str(path), line=line, code=exc.sqlstate, hint=exc.diag.message_hint,
                    ) from None
        return [f[0] for f in files]
