"""Which seed statements run after the seed's transaction: the ones PostgreSQL refuses inside
a transaction block, recognised through leading comments and any letter case."""

from __future__ import annotations

import pytest

from appkit.db.migrations import outside_transaction


@pytest.mark.parametrize(("sql", "outside"), [
    ("vacuum", True),
    ("VACUUM ANALYZE public.t", True),
    ("-- tidy up\nvacuum (verbose) t", True),
    ("/* c */ create index concurrently i on t (a)", True),
    ("create unique index concurrently i on t (a)", True),
    ("drop index concurrently i", True),
    ("reindex table concurrently t", True),
    ("reindex database postgres", True),
    ("alter system set work_mem = '8MB'", True),
    ("create database other", True),
    ("drop tablespace x", True),
    ("create index i on t (a)", False),
    ("reindex table t", False),
    ("select 'vacuum'", False),
    ("vacuumed_rows := 1", False),
    ("insert into t values ('create database')", False),
    ("analyze t", False),
])
def test_outside_transaction(sql: str, outside: bool) -> None:
    assert outside_transaction(sql) is outside
