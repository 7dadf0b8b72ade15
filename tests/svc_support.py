"""Shared pieces of the domain-service tests: callers as raw REST clients, users, and the RLS matrix.

An RLS matrix is a list of ``Probe``s (object x operation x actor -> expected allow/deny); each
probe runs a real request and says whether the action took effect. ``assert_matrix`` runs them
all and fails with the whole matrix printed as a table when any cell differs (a leak or a
wrongly denied action).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support import StackHandle

PASSWORD = "correct-horse-battery-staple-1"


@dataclass
class Caller:
    """One actor talking to the REST API with raw HTTP (no SDK in between)."""

    name: str
    api_url: str
    apikey: str
    token: str
    user_id: str | None = None

    def headers(self, schema: str = "appkit", **extra: str) -> dict[str, str]:
        return {"apikey": self.apikey, "Authorization": f"Bearer {self.token}", "Accept-Profile": schema,
                "Content-Profile": schema, **extra}

    def get(self, path: str, *, schema: str = "appkit", params: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"{self.api_url}/rest/v1/{path}", headers=self.headers(schema), params=params, timeout=30)

    def post(self, path: str, body: Any, *, schema: str = "appkit", prefer: str = "return=representation",
             params: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{self.api_url}/rest/v1/{path}", json=body, params=params,
                          headers=self.headers(schema, Prefer=prefer), timeout=30)

    def patch(self, path: str, body: Any, *, params: dict[str, str], schema: str = "appkit") -> httpx.Response:
        return httpx.patch(f"{self.api_url}/rest/v1/{path}", json=body, params=params,
                           headers=self.headers(schema, Prefer="return=representation"), timeout=30)

    def delete(self, path: str, *, params: dict[str, str], schema: str = "appkit") -> httpx.Response:
        return httpx.delete(f"{self.api_url}/rest/v1/{path}", params=params,
                            headers=self.headers(schema, Prefer="return=representation"), timeout=30)

    def rpc(self, function: str, body: dict[str, Any] | None = None, *, schema: str = "appkit") -> httpx.Response:
        return self.post(f"rpc/{function}", body or {}, schema=schema, prefer="return=representation")


def new_email(prefix: str = "svc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def sign_up(stack: StackHandle, name: str) -> Caller:
    """A new confirmed user, as a raw REST caller."""
    r = httpx.post(f"{stack.api_url}/auth/v1/signup", json={"email": new_email(name), "password": PASSWORD},
                   headers={"apikey": stack.anon_key}, timeout=30)
    r.raise_for_status()
    body = r.json()
    return Caller(name, stack.api_url, stack.anon_key, body["access_token"], body["user"]["id"])


def anon(stack: StackHandle) -> Caller:
    return Caller("anon", stack.api_url, stack.anon_key, stack.anon_key)


def service(stack: StackHandle) -> Caller:
    return Caller("service_role", stack.api_url, stack.service_role_key, stack.service_role_key)


def sql(stack: StackHandle, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement as the superuser; returns its rows (empty for no result)."""
    with psycopg.connect(stack.db_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(query.encode() if params is None else query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@dataclass
class Probe:
    target: str
    operation: str
    actor: str
    expect: bool
    run: Callable[[], bool]


def assert_matrix(probes: list[Probe]) -> None:
    """Run every probe; on any mismatch fail with the full matrix as a table."""
    rows: list[tuple[Probe, bool | str]] = []
    for p in probes:
        try:
            got: bool | str = p.run()
        except Exception as exc:  # a crash in a probe is a failure of its cell, shown in the table
            got = f"error: {type(exc).__name__}: {exc}"[:80]
        rows.append((p, got))
    bad = [(p, got) for p, got in rows if got is not p.expect]
    if not bad:
        return

    def word(v: bool | str) -> str:
        return v if isinstance(v, str) else ("allow" if v else "deny")

    widths = [max(len(x) for x in col) for col in zip(
        *[("target", "operation", "actor", "expected", "got")]
        + [(p.target, p.operation, p.actor, word(p.expect), word(got)) for p, got in rows], strict=True)]
    lines = []
    for cells, mark in [(("target", "operation", "actor", "expected", "got"), "")] + [
            ((p.target, p.operation, p.actor, word(p.expect), word(got)), _mark(p.expect, got)) for p, got in rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + mark)
    pytest.fail(f"RLS matrix: {len(bad)} of {len(rows)} cells differ\n" + "\n".join(lines), pytrace=False)


def _mark(expect: bool, got: bool | str) -> str:
    if got is expect:
        return ""
    return "  <-- LEAK" if got is True else "  <-- MISMATCH"


def supabase_cli() -> str:
    """The real Supabase CLI binary (env APPKIT_SUPABASE_CLI, else the npm install under /tmp/sbcli)."""
    path = os.environ.get("APPKIT_SUPABASE_CLI") or "/tmp/sbcli/node_modules/.bin/supabase"
    if not Path(path).exists():
        pytest.fail(f"the Supabase CLI is not installed at {path} (set APPKIT_SUPABASE_CLI)")
    return path
