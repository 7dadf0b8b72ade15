"""Import hygiene: the local stack never loads the SDK or the official clients (DESIGN:
the local stack may not depend on the SDK's domain services), and every public module
imports on its own, whichever comes first (no import cycles hidden by import order)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CLI_DIR = Path(__file__).resolve().parents[2] / "cli" / "appkit_cli"


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
     "appkit._async.orgs", "appkit._sync.orgs", "appkit.users", "appkit._async.users", "appkit._sync.users",
     "appkit.users.bulk"],
)
def test_each_module_imports_first(module: str) -> None:
    proc = run(f"import {module}")
    assert proc.returncode == 0, proc.stderr


def test_top_level_names() -> None:
    proc = run("from appkit import AppKit, AsyncAppKit, Model, errors, col, Settings, Page, Principal; print('ok')")
    assert proc.stdout.strip() == "ok", proc.stderr


def _appkit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``import appkit...`` / ``from appkit... import`` in a file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "appkit" or n.startswith("appkit.")]
    return found


def test_cli_imports_only_public_names() -> None:
    """The CLI uses appkit's public packages and the local stack's surface (``appkit.local``),
    never a private module (``appkit._x``) or a module inside the local stack."""
    files = sorted(CLI_DIR.glob("*.py"))
    assert files
    bad = [
        f"{path.name}:{line}: {module}"
        for path in files
        for line, module in _appkit_imports(path)
        if module.startswith("appkit.local.") or any(part.startswith("_") for part in module.split("."))
    ]
    assert bad == [], "\n".join(bad)


def test_local_surface_is_light_and_complete() -> None:
    proc = run(
        "import sys, appkit.local as L\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'psycopg', 'starlette', 'jwt', 'pydantic'} "
        "or m.startswith('appkit.local.'))\n"
        "missing = [n for n in L.__all__ if getattr(L, n, None) is None]\n"
        "print(heavy, missing)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] []"
