"""Supabase's database advisors (splinter's lints), run natively against any Postgres URL.

Every lint of splinter (https://github.com/supabase/splinter) that is plain SQL is here,
with the same name, level, title, description, remediation link, detail text, metadata and
cache key, so a finding reads exactly as `supabase db advisors` and the dashboard print it.
The queries are in ``advisors.sql`` (one ``-- name:`` block per lint); they run in one
read-only transaction with an empty ``search_path``.

.. code-block:: python

    findings = run_advisors("postgresql://postgres:postgres@127.0.0.1:54322/postgres",
                            kind="security", min_level=Level.WARN)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import psycopg

from appkit.db.queries import load_queries
from appkit.errors import DatabaseError, ValidationError


class Level(StrEnum):
    """A finding's severity, lowest first."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, value: str) -> Level:
        """``info``/``warn``/``error`` in any case (``warning`` is accepted for ``warn``)."""
        text = value.strip().upper()
        if text == "WARNING":
            text = "WARN"
        try:
            return cls(text)
        except ValueError:
            raise ValidationError(f"unknown level {value!r}: use info, warn or error", code="invalid_level") from None


_RANK = {Level.INFO: 0, Level.WARN: 1, Level.ERROR: 2}

#: which advisors to run, as `supabase db advisors --type` names them
Kind = Literal["all", "security", "performance"]
KINDS: tuple[Kind, ...] = ("all", "security", "performance")


@dataclass(frozen=True)
class Lint:
    """One advisor lint: what it looks for and how to fix it."""

    code: str
    name: str
    title: str
    level: Level
    facing: str
    categories: tuple[str, ...]
    description: str
    remediation: str

    def matches(self, kind: Kind) -> bool:
        return kind == "all" or kind.upper() in self.categories


@dataclass(frozen=True)
class Finding:
    """One problem a lint found in the database."""

    lint: Lint
    detail: str
    metadata: dict[str, Any] = field(hash=False)
    cache_key: str

    @property
    def name(self) -> str:
        return self.lint.name

    @property
    def level(self) -> Level:
        return self.lint.level

    def as_dict(self) -> dict[str, Any]:
        """The finding in the shape `supabase db advisors` prints."""
        return {
            "name": self.lint.name,
            "title": self.lint.title,
            "level": self.lint.level.value,
            "facing": self.lint.facing,
            "categories": list(self.lint.categories),
            "description": self.lint.description,
            "detail": self.detail,
            "remediation": self.lint.remediation,
            "metadata": self.metadata,
            "cache_key": self.cache_key,
        }


def _lint(code: str, name: str, title: str, level: str, facing: str, categories: tuple[str, ...],
          description: str, remediation: str) -> Lint:
    return Lint(code, name, title, Level(level), facing, categories, description, remediation)


#: every lint, in splinter's order (texts as splinter and the Supabase CLI ship them)
LINTS: tuple[Lint, ...] = (
    _lint('0001', 'unindexed_foreign_keys', 'Unindexed foreign keys', 'INFO', 'EXTERNAL', ('PERFORMANCE',),
         'Identifies foreign key constraints without a covering index, which can impact database performance.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0001_unindexed_foreign_keys'),
    _lint('0002', 'auth_users_exposed', 'Exposed Auth Users', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects if auth.users is exposed to anon or authenticated roles via a view or materialized view'
         ' in schemas exposed to PostgREST, potentially compromising user data security.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0002_auth_users_exposed'),
    _lint('0003', 'auth_rls_initplan', 'Auth RLS Initialization Plan', 'WARN', 'EXTERNAL', ('PERFORMANCE',),
         'Detects if calls to `current_setting()` and `auth.<function>()` in RLS policies are being '
         'unnecessarily re-evaluated for each row',
         'https://supabase.com/docs/guides/database/database-linter?lint=0003_auth_rls_initplan'),
    _lint('0004', 'no_primary_key', 'No Primary Key', 'INFO', 'EXTERNAL', ('PERFORMANCE',),
         'Detects if a table does not have a primary key. Tables without a primary key can be inefficient'
         ' to interact with at scale.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0004_no_primary_key'),
    _lint('0005', 'unused_index', 'Unused Index', 'INFO', 'EXTERNAL', ('PERFORMANCE',),
         'Detects if an index has never been used and may be a candidate for removal.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0005_unused_index'),
    _lint('0006', 'multiple_permissive_policies', 'Multiple Permissive Policies', 'WARN', 'EXTERNAL', ('PERFORMANCE',),
         'Detects if multiple permissive row level security policies are present on a table for the same '
         '`role` and `action` (e.g. insert). Multiple permissive policies are suboptimal for performance '
         'as each policy must be executed for every relevant query.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0006_multiple_permissive_policies'),
    _lint('0007', 'policy_exists_rls_disabled', 'Policy Exists RLS Disabled', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects cases where row level security (RLS) policies have been created, but RLS has not been '
         'enabled for the underlying table.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0007_policy_exists_rls_disabled'),
    _lint('0008', 'rls_enabled_no_policy', 'RLS Enabled No Policy', 'INFO', 'EXTERNAL', ('SECURITY',),
         'Detects cases where row level security (RLS) has been enabled on a table but no RLS policies '
         'have been created.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0008_rls_enabled_no_policy'),
    _lint('0009', 'duplicate_index', 'Duplicate Index', 'WARN', 'EXTERNAL', ('PERFORMANCE',),
         'Detects cases where two ore more identical indexes exist.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0009_duplicate_index'),
    _lint('0010', 'security_definer_view', 'Security Definer View', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects views defined with the SECURITY DEFINER property. These views enforce Postgres '
         'permissions and row level security policies (RLS) of the view creator, rather than that of the '
         'querying user',
         'https://supabase.com/docs/guides/database/database-linter?lint=0010_security_definer_view'),
    _lint('0011', 'function_search_path_mutable', 'Function Search Path Mutable', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects functions where the search_path parameter is not set.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0011_function_search_path_mutable'),
    _lint('0013', 'rls_disabled_in_public', 'RLS Disabled in Public', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects cases where row level security (RLS) has not been enabled on tables in schemas exposed to PostgREST',
         'https://supabase.com/docs/guides/database/database-linter?lint=0013_rls_disabled_in_public'),
    _lint('0014', 'extension_in_public', 'Extension in Public', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects extensions installed in the `public` schema.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0014_extension_in_public'),
    _lint('0015', 'rls_references_user_metadata', 'RLS references user metadata', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects when Supabase Auth user_metadata is referenced insecurely in a row level security (RLS) policy.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0015_rls_references_user_metadata'),
    _lint('0016', 'materialized_view_in_api', 'Materialized View in API', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects materialized views that are accessible over the Data APIs.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0016_materialized_view_in_api'),
    _lint('0017', 'foreign_table_in_api', 'Foreign Table in API', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects foreign tables that are accessible over APIs. Foreign tables do not respect row level '
         'security policies.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0017_foreign_table_in_api'),
    _lint('0018', 'unsupported_reg_types', 'Unsupported reg types', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Identifies columns using unsupported reg* types outside pg_catalog schema, which prevents '
         'database upgrades using pg_upgrade.',
         'https://supabase.com/docs/guides/database/database-linter?lint=unsupported_reg_types'),
    _lint('0019', 'insecure_queue_exposed_in_api', 'Insecure Queue Exposed in API', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects cases where an insecure Queue is exposed over Data APIs',
         'https://supabase.com/docs/guides/database/database-linter?lint=0019_insecure_queue_exposed_in_api'),
    _lint('0020', 'table_bloat', 'Table Bloat', 'INFO', 'EXTERNAL', ('PERFORMANCE',),
         'Detects if a table has excess bloat and may benefit from maintenance operations like vacuum full or cluster.',
         'Consider running vacuum full (WARNING: incurs downtime) and tweaking autovacuum settings to reduce bloat.'),
    _lint('0021', 'fkey_to_auth_unique', 'Foreign Key to Auth Unique Constraint', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects user defined foreign keys to unique constraints in the auth schema.',
         'Drop the foreign key constraint that references the auth schema.'),
    _lint('0022', 'extension_versions_outdated', 'Extension Versions Outdated', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects extensions that are not using the default (recommended) version.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0022_extension_versions_outdated'),
    _lint('0023', 'sensitive_columns_exposed', 'Sensitive Columns Exposed', 'ERROR', 'EXTERNAL', ('SECURITY',),
         'Detects tables exposed via API that contain columns with potentially sensitive data (PII, '
         'credentials, financial info) without RLS protection.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0023_sensitive_columns_exposed'),
    _lint('0024', 'rls_policy_always_true', 'RLS Policy Always True', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects RLS policies that use overly permissive expressions like `USING (true)` or `WITH CHECK '
         '(true)` for UPDATE, DELETE, or INSERT operations. SELECT policies with `USING (true)` are '
         'intentionally excluded as this pattern is often used deliberately for public read access.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0024_permissive_rls_policy'),
    _lint('0025', 'public_bucket_allows_listing', 'Public Bucket Allows Listing', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects public storage buckets with a broad SELECT policy on `storage.objects`, which allows '
         'clients to list all files in the bucket.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0025_public_bucket_allows_listing'),
    _lint('0026', 'pg_graphql_anon_table_exposed',
          'Public Can See Object in GraphQL Schema', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects tables, views, materialized views, and foreign tables that are visible in the GraphQL '
         'schema to anyone using your public anon key. Revoke `SELECT` from `anon` for objects that '
         'should not be discoverable before sign-in, and check lint 0027 for the matching signed-in-user '
         'exposure.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0026_pg_graphql_anon_table_exposed'),
    _lint('0027', 'pg_graphql_authenticated_table_exposed',
          'Signed-In Users Can See Object in GraphQL Schema', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects tables, views, materialized views, and foreign tables that are visible in the GraphQL '
         'schema to signed-in users. Revoke `SELECT` from `authenticated` for objects that signed-in '
         'users should not discover, and check lint 0026 for the matching public exposure.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0027_pg_graphql_authenticated_table_exposed'),
    _lint('0028', 'anon_security_definer_function_executable',
          'Public Can Execute SECURITY DEFINER Function', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects `SECURITY DEFINER` functions that are callable without signing in. Revoke `EXECUTE`, '
         'switch the function to `SECURITY INVOKER`, or move it out of your exposed API schema if it is '
         'not meant to be public.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0028_anon_security_definer_function_executable'),
    _lint('0029', 'authenticated_security_definer_function_executable',
          'Signed-In Users Can Execute SECURITY DEFINER Function', 'WARN', 'EXTERNAL', ('SECURITY',),
         'Detects `SECURITY DEFINER` functions that are callable by signed-in users. Revoke `EXECUTE`, '
         'switch the function to `SECURITY INVOKER`, or move it out of your exposed API schema if '
         'signed-in users should not call it.',
         'https://supabase.com/docs/guides/database/database-linter?lint=0029_authenticated_security_definer_function_executable'),
)

#: lints the Supabase CLI 2.117.0 does not ship yet (splinter added them in 2026)
NEWER_THAN_CLI = frozenset({
    "public_bucket_allows_listing", "pg_graphql_anon_table_exposed", "pg_graphql_authenticated_table_exposed",
    "anon_security_definer_function_executable", "authenticated_security_definer_function_executable",
})

#: schemas owned by Supabase's services or by extensions, which the lints leave alone
EXCLUDED_SCHEMAS: tuple[str, ...] = (
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config", "_timescaledb_internal", "auth", "cron",
    "extensions", "graphql", "graphql_public", "information_schema", "net", "pgmq", "pgroonga", "pgsodium",
    "pgsodium_masks", "pgtle", "pgbouncer", "pg_catalog", "realtime", "repack", "storage", "supabase_functions",
    "supabase_migrations", "tiger", "topology", "vault",
)

_BY_NAME = {lint.name: lint for lint in LINTS}
_NEEDS_STORAGE = frozenset({"public_bucket_allows_listing"})


def lint_named(name: str) -> Lint:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValidationError(f"unknown lint {name!r}", code="invalid_lint") from None


def exposed_schemas(db_schemas: str | None) -> list[str]:
    """The API schemas from ``pgrst.db_schemas`` (``public`` when it is not set), as Supabase reads them."""
    if db_schemas is None:
        db_schemas = "public"
    if db_schemas == "":
        return []
    return [part.strip(" ") for part in db_schemas.split(",")]


def select_findings(findings: Iterable[Finding], *, kind: Kind = "all", min_level: Level = Level.INFO) -> list[Finding]:
    """The findings of ``kind`` at ``min_level`` or above."""
    if kind not in KINDS:
        raise ValidationError(f"unknown advisor type {kind!r}: use all, security or performance", code="invalid_type")
    return [f for f in findings if f.lint.matches(kind) and f.level.rank >= min_level.rank]


def fails(findings: Sequence[Finding], fail_on: Level | None) -> bool:
    """True when a finding is at ``fail_on`` or above (``None``: never), as ``--fail-on`` decides."""
    return fail_on is not None and any(f.level.rank >= fail_on.rank for f in findings)


def run_advisors(
    db_url: str,
    *,
    kind: Kind = "all",
    min_level: Level = Level.INFO,
    connect_timeout: float = 10,
    statement_timeout: float = 120,
) -> list[Finding]:
    """Run every lint against the database at ``db_url``; the findings of ``kind`` at ``min_level`` or above.

    Findings are ordered by lint, then cache key. Nothing is written: the lints run in a
    read-only transaction that is rolled back.
    """
    if kind not in KINDS:
        raise ValidationError(f"unknown advisor type {kind!r}: use all, security or performance", code="invalid_type")
    lints = [lint for lint in LINTS if lint.matches(kind) and lint.level.rank >= min_level.rank]
    queries = load_queries("appkit.db", "advisors.sql")
    try:
        conn = psycopg.connect(db_url, connect_timeout=max(1, round(connect_timeout)), prepare_threshold=None)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database: {_first_line(exc)}") from None
    findings: list[Finding] = []
    with conn:
        conn.read_only = True
        current = "setup"
        try:
            with conn.cursor() as cur:
                cur.execute("select set_config('statement_timeout', %s, true)", (f"{int(statement_timeout * 1000)}",))
                cur.execute("select set_config('search_path', '', true)")
                cur.execute(queries["exposed_schemas"])
                row = cur.fetchone()
                exposed = exposed_schemas(None if row is None else row[0])
                cur.execute("select set_config('appkit_lint.exposed', %s::text[]::text, true),"
                            " set_config('appkit_lint.excluded', %s::text[]::text, true)",
                            (exposed, list(EXCLUDED_SCHEMAS)))
                cur.execute(queries["has_storage"])
                row = cur.fetchone()
                has_storage = bool(row and row[0])
                for lint in lints:
                    if lint.name in _NEEDS_STORAGE and not has_storage:
                        continue
                    current = lint.name
                    cur.execute(queries[lint.name])
                    for detail, metadata, cache_key in cur.fetchall():
                        meta = json.loads(metadata) if isinstance(metadata, str) else metadata
                        findings.append(Finding(lint, str(detail), dict(meta or {}), str(cache_key)))
        except psycopg.Error as exc:
            raise DatabaseError(f"advisor {current} failed: {_first_line(exc)}",
                                code=getattr(exc, "sqlstate", None)) from None
        finally:
            if not conn.closed:
                conn.rollback()
    order = {lint.name: i for i, lint in enumerate(LINTS)}
    findings.sort(key=lambda f: (order[f.name], f.cache_key, f.detail))
    return findings


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "EXCLUDED_SCHEMAS",
    "KINDS",
    "LINTS",
    "NEWER_THAN_CLI",
    "Finding",
    "Kind",
    "Level",
    "Lint",
    "exposed_schemas",
    "fails",
    "lint_named",
    "run_advisors",
    "select_findings",
]
