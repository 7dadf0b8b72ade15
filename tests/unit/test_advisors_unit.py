"""The advisor registry, level/type parsing and the named-query loader (no database)."""

from __future__ import annotations

import pytest

from appkit.db.advisors import LINTS, Finding, Level, exposed_schemas, fails, lint_named, select_findings
from appkit.db.queries import load_queries, parse_queries
from appkit.errors import ConfigError, ValidationError


def test_every_lint_has_a_query_and_unique_name() -> None:
    queries = load_queries("appkit.db", "advisors.sql")
    names = [lint.name for lint in LINTS]
    assert len(names) == len(set(names)) == 28
    assert set(names) <= set(queries)
    codes = [lint.code for lint in LINTS]
    assert codes == sorted(codes)
    for lint in LINTS:
        assert lint.categories and set(lint.categories) <= {"SECURITY", "PERFORMANCE"}
        assert lint.facing == "EXTERNAL"


def test_parse_queries() -> None:
    text = "-- header\n-- name: one\n-- first\nselect 1;\n\n-- name: two\nselect 2;\n"
    assert parse_queries(text) == {"one": "-- first\nselect 1;", "two": "select 2;"}
    with pytest.raises(ConfigError, match="twice"):
        parse_queries("-- name: a\nselect 1;\n-- name: a\nselect 2;\n")


@pytest.mark.parametrize(("raw", "level"), [("info", Level.INFO), ("WARN", Level.WARN), ("warning", Level.WARN),
                                            (" error ", Level.ERROR)])
def test_level_parse(raw: str, level: Level) -> None:
    assert Level.parse(raw) is level


@pytest.mark.parametrize("raw", ["", "none", "fatal", "warn!"])
def test_level_parse_rejects(raw: str) -> None:
    with pytest.raises(ValidationError):
        Level.parse(raw)


def test_exposed_schemas_reads_pgrst_db_schemas_like_supabase() -> None:
    assert exposed_schemas(None) == ["public"]
    assert exposed_schemas("") == []
    assert exposed_schemas("public, graphql_public ,api") == ["public", "graphql_public", "api"]


def test_select_and_fail_on() -> None:
    info = Finding(lint_named("unused_index"), "d", {}, "k1")
    error = Finding(lint_named("rls_disabled_in_public"), "d", {}, "k2")
    assert select_findings([info, error], min_level=Level.WARN) == [error]
    assert select_findings([info, error], kind="performance") == [info]
    assert select_findings([info, error], kind="security") == [error]
    assert fails([info], Level.INFO) and not fails([info], Level.WARN) and not fails([error], None)
    with pytest.raises(ValidationError):
        select_findings([info], kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        lint_named("nope")
    assert error.as_dict()["remediation"].endswith("0013_rls_disabled_in_public")
