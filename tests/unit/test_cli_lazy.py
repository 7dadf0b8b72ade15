"""The CLI's sub-commands load on first use: ``appkit --help`` imports none of them, ``appkit gen ...`` only gen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from appkit_cli._lazy import LAZY, load
from appkit_cli.main import app

SDK = "{'supabase', 'postgrest', 'storage3', 'realtime', 'supabase_auth'}"


def loaded_after(args: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after running ``appkit ARGS``."""
    code = (
        "import sys\n"
        "from appkit_cli.main import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_help_loads_no_sub_command() -> None:
    mods = loaded_after(["--help"])
    assert sorted(m for m in mods if m.startswith("appkit_cli.") and m not in {
        "appkit_cli.main", "appkit_cli._common", "appkit_cli._lazy", "appkit_cli.templates"}) == []
    assert not {"psycopg", "appkit.local.stack", "appkit.local.config", "appkit.client"} & mods


def test_version_loads_no_sub_command() -> None:
    mods = loaded_after(["--version"])
    assert "appkit_cli.gen" not in mods and "psycopg" not in mods


def test_gen_loads_only_gen() -> None:
    mods = loaded_after(["gen", "models", "--help"])
    assert "appkit_cli.gen" in mods
    others = {f"appkit_cli.{e.module.rsplit('.', 1)[1]}" for e in LAZY.values()} - {"appkit_cli.gen"}
    assert others & mods == set()
    assert "appkit.local.stack" not in mods  # --db-url needs no project folder


@pytest.mark.parametrize("name", sorted(LAZY))
def test_listed_help_is_the_sub_commands_own(name: str) -> None:
    """``appkit --help`` shows LAZY's line without importing; it must be what the command itself says."""
    command = load(name)
    own = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    assert LAZY[name].help == own


@pytest.mark.parametrize("name", sorted(LAZY))
def test_every_lazy_command_runs(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [*LAZY, "init", "dev", "start", "stop", "status"]:
        assert f" {name} " in result.output


def test_unknown_command_is_one_line() -> None:
    result = CliRunner().invoke(app, ["nosuch"])
    assert result.exit_code != 0
    assert "No such command" in result.output


def test_every_cli_module_imports_without_the_sdk() -> None:
    """What ``appkit_cli.main`` no longer imports eagerly, checked directly: no sub-command module
    loads the SDK or the official clients at import time (they import it inside commands)."""
    modules = ", ".join(sorted({e.module for e in LAZY.values()}))
    code = (f"import sys, {modules}\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDK} "
            "or m in {'appkit.client', 'appkit._async', 'appkit._sync', 'appkit.auth'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"




@pytest.mark.parametrize(("words", "expected"), [("appkit st", {"start", "stop", "status", "storage", "studio"}),
                                                 ("appkit storage c", {"cp"}), ("appkit gen m", {"models"})])
def test_shell_completion_reaches_lazy_sub_commands(words: str, expected: set[str]) -> None:
    env = {**os.environ, "_APPKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}
    proc = subprocess.run([sys.executable, "-c", "from appkit_cli.main import app\napp(prog_name='appkit')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert set(proc.stdout.split()) == expected, proc.stderr
