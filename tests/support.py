"""Helpers shared by the test suites: free ports, running the CLI, starting a stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``appkit ARGS`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "appkit_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


CONFIG = """\
project_id = "appkit-test"
[api]
port = {api_port}
max_rows = 1000
schemas = ["public", "graphql_public", "appkit"]
[db]
port = {db_port}
[auth]
site_url = "http://127.0.0.1:3000"
enable_anonymous_sign_ins = true
[auth.email]
enable_confirmations = false
[auth.rate_limit]
email_sent = 1000
sms_sent = 1000
anonymous_users = 1000
token_refresh = 100000
sign_in_sign_ups = 100000
token_verifications = 100000
"""


def write_project(workdir: Path, *, api_port: int | None = None, db_port: int | None = None,
                  extra_config: str = "", studio_port: int | None = None) -> tuple[int, int]:
    """A test project's config.toml; the studio is off unless ``studio_port`` is given (test stacks run in
    parallel: none may take the default port 54323)."""
    api_port = api_port or free_port()
    db_port = db_port or free_port()
    studio = "[studio]\nenabled = false\n" if studio_port is None else f"[studio]\nport = {studio_port}\n"
    (workdir / "supabase" / "migrations").mkdir(parents=True, exist_ok=True)
    (workdir / "supabase" / "config.toml").write_text(
        CONFIG.format(api_port=api_port, db_port=db_port) + studio + extra_config
    )
    return api_port, db_port


@dataclass
class StackHandle:
    api_url: str
    anon_key: str
    service_role_key: str
    db_url: str
    jwt_secret: str
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_stack(workdir: Path, *, timeout: float = 90, env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> StackHandle:
    """Start ``appkit dev ARGS`` on ``workdir`` (already holding supabase/config.toml) and wait for it."""
    state = workdir / "supabase" / ".appkit" / "stack.json"
    log = open(workdir / "stack-test.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "appkit_cli", "dev", "--workdir", str(workdir), *args],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stack exited: {(workdir / 'stack-test.log').read_text()[-2000:]}")
        if state.exists():
            try:
                data = json.loads(state.read_text())
            except ValueError:
                data = None
            if data and data.get("pid") == proc.pid:
                return StackHandle(
                    api_url=data["api_url"], anon_key=data["anon_key"], service_role_key=data["service_role_key"],
                    db_url=data["db_url"], jwt_secret=data["jwt_secret"], workdir=workdir, process=proc,
                )
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("stack did not become ready")


SUPABASE_CLI_VERSION = "2.117.0"


def supabase_cli() -> str:
    """The real Supabase CLI: ``$APPKIT_SUPABASE_CLI``, else ``supabase@2.117.0`` from npm, installed once
    into ``~/.cache/appkit-tests/supabase-cli`` (reused when present)."""
    configured = os.environ.get("APPKIT_SUPABASE_CLI")
    if configured:
        return configured
    prefix = Path.home() / ".cache" / "appkit-tests" / "supabase-cli"
    binary = prefix / "node_modules" / ".bin" / "supabase"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "i", "-E", "--no-audit", "--no-fund", "--prefix", str(prefix), f"supabase@{SUPABASE_CLI_VERSION}"],
            check=True, capture_output=True, timeout=600,
        )
    return str(binary)
