"""Import hygiene: the local stack never loads the SDK or the official clients (DESIGN:
the local stack may not depend on the SDK's domain services), and every public module
imports on its own, whichever comes first (no import cycles hidden by import order)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_local_stack_does_not_import_the_sdk_or_clients() -> None:
    proc = run(
        "import sys, appkit.local.gateway, appkit.local.stack, appkit_cli.main\n"
        "import appkit.local.rest, appkit.local.auth, appkit.local.storage, appkit.local.realtime\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'supabase', 'postgrest', 'storage3', 'realtime', 'supabase_auth'} "
        "or m in {'appkit.client', 'appkit._async', 'appkit._sync', 'appkit.auth'})\n"
        "print(bad)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module",
    ["appkit.client", "appkit._async.auth", "appkit._sync.client", "appkit.auth", "appkit.model",
     "appkit.realtime", "appkit.files", "appkit.data", "appkit.settings", "appkit.errors", "appkit.orgs",
     "appkit._async.orgs", "appkit._sync.orgs"],
)
def test_each_module_imports_first(module: str) -> None:
    proc = run(f"import {module}")
    assert proc.returncode == 0, proc.stderr


def test_top_level_names() -> None:
    proc = run("from appkit import AppKit, AsyncAppKit, Model, errors, col, Settings, Page, Principal; print('ok')")
    assert proc.stdout.strip() == "ok", proc.stderr
