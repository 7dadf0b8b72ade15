"""``appkit``: the command line. Mirrors the Supabase CLI's local workflow."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.logging import RichHandler
from rich.table import Table

from appkit.errors import StackError
from appkit.local import (
    LocalStack,
    StackInfo,
    StackPaths,
    read_info,
    remove_data,
    resolve_workdir,
    stop_stack,
    write_atomic,
)
from appkit_cli import templates
from appkit_cli._common import (
    DbUrlOption,
    WorkdirOption,
    console,
    emit_json,
    err_console,
    fail,
    handle_errors,
    project,
)
from appkit_cli.audit import audit_app
from appkit_cli.db import db_app
from appkit_cli.gen import gen_app
from appkit_cli.jobs import jobs_app
from appkit_cli.mail import mail
from appkit_cli.orgs import orgs_app
from appkit_cli.ratelimit import ratelimit_app
from appkit_cli.schema import schema_app
from appkit_cli.storage import storage_app
from appkit_cli.studio import start_beside, stop_beside, studio, studio_url, wait_studio_url
from appkit_cli.users import users_app

if TYPE_CHECKING:
    from appkit.studio import StudioServer

app = typer.Typer(
    name="appkit",
    help="appkit: Supabase backends in Python — the local stack, migrations and admin.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from appkit import __version__

        sys.stdout.write(f"appkit {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", "-v", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """appkit: Supabase backends in Python — the local stack, migrations and admin."""
app.add_typer(db_app, name="db")
app.add_typer(gen_app, name="gen")
app.add_typer(schema_app, name="schema")
app.add_typer(orgs_app, name="orgs")
app.add_typer(jobs_app, name="jobs")
app.add_typer(users_app, name="users")
app.add_typer(storage_app, name="storage")
app.add_typer(ratelimit_app, name="ratelimit")
app.add_typer(audit_app, name="audit")
app.command("mail")(mail)
app.command("studio")(studio)


class Output(StrEnum):
    pretty = "pretty"
    env = "env"
    json = "json"
    dotenv = "dotenv"


LABELS = {"API_URL": "API URL", "DB_URL": "DB URL", "STUDIO_URL": "Studio URL", "ANON_KEY": "Anon Key",
          "SERVICE_ROLE_KEY": "Service Role Key", "JWT_SECRET": "JWT Secret"}


def print_info(info: StackInfo, output: Output = Output.pretty, studio: str | None = None) -> None:
    env = info.as_env()
    if studio:
        env = {"API_URL": env.pop("API_URL"), "DB_URL": env.pop("DB_URL"), "STUDIO_URL": studio, **env}
    if output is Output.dotenv:
        for key, value in info.as_sdk_env().items():
            console.print(f'{key}="{value}"', highlight=False, soft_wrap=True)
    elif output is Output.json:
        emit_json(env)
    elif output is Output.env:
        for key in sorted(env):
            console.print(f'{key}="{env[key]}"', highlight=False, soft_wrap=True)
    elif not console.is_terminal:  # piped: one "Label: value" line each, nothing wrapped or padded
        sys.stdout.write("".join(f"{LABELS[key]}: {value}\n" for key, value in env.items()))
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold cyan")
        table.add_column(overflow="fold")
        for key, value in env.items():
            table.add_row(LABELS[key], value)
        console.print(table)


@app.command()
@handle_errors
def init(
    workdir: WorkdirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.toml.")] = False,
) -> None:
    """Create supabase/config.toml, supabase/migrations/ (with appkit's own migrations) and supabase/seed.sql."""
    paths = resolve_workdir(workdir or Path.cwd())  # here, not in a parent project
    if paths.config_file.exists() and not force:
        raise fail(f"{paths.config_file} already exists (use --force to overwrite)")
    paths.migrations_dir.mkdir(parents=True, exist_ok=True)
    project_id = re.sub(r"[^A-Za-z0-9_-]", "-", paths.workdir.name) or "appkit"
    write_atomic(paths.config_file, templates.CONFIG_TOML.format(project_id=project_id).encode(), 0o644)
    seed = paths.supabase_dir / "seed.sql"
    if not seed.exists():
        write_atomic(seed, templates.SEED_SQL.encode(), 0o644)
    ignore = paths.supabase_dir / ".gitignore"
    if not ignore.exists():
        write_atomic(ignore, templates.GITIGNORE.encode(), 0o644)
    from appkit.db.bundled import copy_missing

    for copied in copy_missing(paths.migrations_dir):
        console.print(f"Copied appkit's [bold]supabase/migrations/{copied.name}[/]")
    console.print(f"Initialised a Supabase project in [bold]{paths.supabase_dir}[/]. Run [bold]appkit dev[/] next.")


class LogFormat(StrEnum):
    pretty = "pretty"
    json = "json"


LogFormatOption = Annotated[LogFormat, typer.Option(
    "--log-format", help="pretty: readable lines; json: one JSON object per line with the request id "
    "(and one line per request).")]


def _configure_logging(verbose: bool, log_format: LogFormat = LogFormat.pretty) -> None:
    from appkit.local import JsonFormatter, RequestIdFilter

    handler: logging.Handler
    if log_format is LogFormat.json:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
        logging.getLogger("psycopg").setLevel(logging.WARNING)
        logging.getLogger("uvicorn.error").setLevel(logging.INFO)
        logging.getLogger("appkit.local.access").setLevel(logging.INFO)
        return
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=False, markup=False, rich_tracebacks=False)
        fmt = "%(name)s: %(message)s"
    else:  # a log file (`appkit start`): one plain line per record
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt, handlers=[handler], force=True)
    logging.getLogger("psycopg").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    logging.getLogger("appkit.local.access").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
@handle_errors
def dev(
    workdir: WorkdirOption = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="Use this Postgres instead of the embedded one.",
                                               show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
    log_format: LogFormatOption = LogFormat.pretty,
) -> None:
    """Run the local stack in the foreground with readable logs; Ctrl-C stops it cleanly."""
    _configure_logging(verbose, log_format)
    stack = LocalStack(project(workdir).workdir, db_url=db_url or os.environ.get("SUPABASE_DB_URL") or None)
    for warning in stack.config.warnings:
        logging.getLogger("appkit.local.config").warning("%s", warning)
    t0 = time.perf_counter()
    studio_server: list[StudioServer | None] = []

    def ready(info: StackInfo) -> None:
        logging.getLogger("appkit.local").info("ready in %.2f s (Ctrl-C to stop)", time.perf_counter() - t0)
        if stack.config.studio.enabled:
            studio_server.append(start_beside(info, stack.paths, stack.config.studio.port))
        print_info(info, studio=studio_url(stack.paths, os.getpid()))

    try:
        stack.serve(on_ready=ready, log_level="info" if verbose else "warning",
                    own_logging=log_format is LogFormat.json)
    finally:
        stop_beside(studio_server[0] if studio_server else None, stack.paths)
    logging.getLogger("appkit.local").info("stopped")


@app.command()
@handle_errors
def start(
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.", min=1)] = 120,
    log_format: LogFormatOption = LogFormat.pretty,
) -> None:
    """Start the local stack in the background and return once it is ready (logs: supabase/.appkit/stack.log)."""
    paths = project(workdir)
    stack = LocalStack(paths.workdir)  # validates config.toml before anything starts
    for warning in stack.config.warnings:
        err_console.print(f"WARN: {warning}", markup=False, highlight=False, soft_wrap=True)
    if read_info(paths) is not None:
        raise fail(f"the local stack is already running in {paths.workdir}; run `appkit stop` first")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "appkit_cli", "dev", "--workdir", str(paths.workdir), "--log-format", log_format]
    env = dict(os.environ)
    if db_url:
        env["SUPABASE_DB_URL"] = db_url
    else:
        env.pop("SUPABASE_DB_URL", None)
    with open(paths.log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    info = _wait_ready(paths, proc, timeout)
    print_info(info, studio=wait_studio_url(paths, info.pid) if stack.config.studio.enabled else None)


def _wait_ready(paths: StackPaths, proc: subprocess.Popen[bytes], timeout: float) -> StackInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_info(paths)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            raise StackError(_last_error(paths.log_file) or f"the stack exited with status {proc.returncode}")
        time.sleep(0.05)
    stop_stack(paths)
    raise StackError(f"the stack was not ready after {timeout:.0f}s (see {paths.log_file})")


def _last_error(log_file: Path) -> str | None:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines[-50:]):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    return None


@app.command()
@handle_errors
def stop(
    workdir: WorkdirOption = None,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Delete the local data after stopping.")] = False,
) -> None:
    """Stop the local stack; its data is kept unless --no-backup."""
    paths = project(workdir)
    stopped = stop_stack(paths)
    if no_backup:
        remove_data(paths)
    if stopped:
        console.print("Stopped the local stack" + (" and deleted its data." if no_backup else "."))
    elif no_backup:
        console.print("The local stack was not running; deleted its data.")
    else:
        console.print("The local stack is not running.")


@app.command()
@handle_errors
def status(
    workdir: WorkdirOption = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.pretty,
) -> None:
    """Show the running stack's URLs and keys (the names `supabase status -o env` uses).

    `-o dotenv` prints them as the SUPABASE_* variables the SDK's `AppKit.from_env()` reads.
    """
    paths = project(workdir)
    info = read_info(paths)
    if info is None:
        raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start`")
    print_info(info, output, studio=studio_url(paths, info.pid) if output is not Output.dotenv else None)
    problem = _health_problem(info)
    if problem is not None:
        raise fail(f"the local stack (pid {info.pid}) is running but {problem}")


def _health_problem(info: StackInfo) -> str | None:
    """None when the running stack's ``/health`` says ok; otherwise what is wrong."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(info.api_url + "/health", timeout=10) as resp:  # noqa: S310 - our own URL
            resp.read()
        return None
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        down = ", ".join(body.get("down") or []) or "a component"
        reason = body.get("reason")
        return f"unhealthy: {down} down" + (f" ({reason})" if reason else "")
    except (OSError, ValueError) as exc:
        return f"not answering on {info.api_url} ({getattr(exc, 'reason', exc)})"


def run() -> None:
    app()

