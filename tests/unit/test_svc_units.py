"""Units of the domain services: named-query files, psycopg error mapping, input checks, imports."""

from __future__ import annotations

import math
import subprocess
import sys

import psycopg
import pytest

from appkit import errors
from appkit.db.connect import admin_session, map_db_error
from appkit.db.queries import load_queries, parse_queries
from appkit.ratelimit.models import check_bucket, check_key


def test_parse_queries_splits_named_blocks() -> None:
    q = parse_queries("-- name: a\n-- first\nselect 1;\n\n-- name: b_2\nselect 2\n")
    assert q == {"a": "-- first\nselect 1;", "b_2": "select 2"}


@pytest.mark.parametrize("text", ["-- name: a\nselect 1\n-- name: a\nselect 2", "-- name: a\n\n-- name: b\nselect 1"])
def test_parse_queries_rejects_duplicates_and_empty(text: str) -> None:
    with pytest.raises(errors.ConfigError):
        parse_queries(text)


@pytest.mark.parametrize("package", ["appkit.ratelimit"])
def test_shipped_query_files_parse(package: str) -> None:
    queries = load_queries(package)
    assert queries and all(q.strip() for q in queries.values())


def test_map_db_error_without_sqlstate_is_unavailable() -> None:
    assert isinstance(map_db_error(psycopg.OperationalError("boom")), errors.ServiceUnavailable)


@pytest.mark.parametrize("url", ["", "   ", "not a url at all ===", "postgresql://u@127.0.0.1:1/x"])
def test_connect_failures_are_appkit_errors(url: str) -> None:
    with pytest.raises(errors.AppKitError), admin_session(url, connect_timeout=1):
        pass


@pytest.mark.parametrize("key", ["", None, 3, "x" * 401, "a\x00"])
def test_check_key(key: object) -> None:
    with pytest.raises(errors.ValidationError):
        check_key(key)


@pytest.mark.parametrize(("capacity", "refill", "cost"), [
    (0, 1, 1), (True, 1, 1), (1, math.nan, 1), (1, -0.1, 1), (1, 1, 2), (1, 1, False), (2**31, 1, 1),
])
def test_check_bucket(capacity: object, refill: object, cost: object) -> None:
    with pytest.raises(errors.ValidationError):
        check_bucket(capacity, refill, cost)


def test_check_bucket_accepts_ints_as_rates() -> None:
    assert check_bucket(10, 1, 0) == (10, 1.0, 0)


@pytest.mark.parametrize("module", ["appkit.ratelimit", "appkit._async.ratelimit", "appkit._sync.ratelimit",
                                    "appkit.ratelimit.admin", "appkit_cli.ratelimit"])
def test_each_service_module_imports_first(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_modules_do_not_load_the_sdk() -> None:
    code = ("import sys, appkit_cli.main\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'supabase', 'postgrest', 'storage3', "
            "'realtime', 'supabase_auth'} or m in {'appkit.client', 'appkit._async', 'appkit._sync'})\n"
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr
