"""Shared CLI plumbing: one-line errors, consoles, the shared options (--workdir, --db-url, -o, admin credentials)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from appkit.errors import AppKitError

if TYPE_CHECKING:
    from appkit import AppKit

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

WorkdirOption = Annotated[
    Path | None,
    typer.Option("--workdir", help="Project folder holding supabase/ (default: the current folder).",
                 show_default=False),
]
DbUrlOption = Annotated[
    str | None,
    typer.Option("--db-url", envvar="SUPABASE_DB_URL", help="Postgres URL to use instead of the local database.",
                 show_default=False),
]



class Format(StrEnum):
    """Output of read commands: a table for people, JSON for programs."""

    pretty = "pretty"
    json = "json"


OutputOption = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="SUPABASE_URL", show_default=False,
                 help="A hosted project's API URL (default: the running local stack's)."),
]
ServiceKeyOption = Annotated[
    str | None,
    typer.Option("--service-role-key", envvar="SUPABASE_SERVICE_ROLE_KEY", show_default=False,
                 help="The project's service-role key (with --url)."),
]


def emit_json(data: Any) -> None:
    """JSON on stdout exactly as is: never wrapped, padded or coloured (safe to pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def admin_client(workdir: Path | None, url: str | None, service_role_key: str | None) -> AppKit:
    """An SDK client with the service role: for ``--url``/``--service-role-key`` (or ``SUPABASE_URL``/
    ``SUPABASE_SERVICE_ROLE_KEY``), else for the local stack running in the project."""
    from appkit import AppKit
    from appkit.local import read_info, resolve_workdir

    if url or service_role_key:
        if not (url and service_role_key):
            raise fail("--url and --service-role-key go together (or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY)")
        return AppKit(url=url, anon_key=os.environ.get("SUPABASE_ANON_KEY") or service_role_key,
                      service_role_key=service_role_key, jwt_secret=os.environ.get("SUPABASE_JWT_SECRET") or None)
    paths = resolve_workdir(workdir)
    info = read_info(paths)
    if info is None:
        raise fail(f"the local stack is not running in {paths.workdir}; run `appkit start`"
                   " (or pass --url and --service-role-key for a hosted project)")
    return AppKit(url=info.api_url, anon_key=info.anon_key, service_role_key=info.service_role_key,
                  jwt_secret=info.jwt_secret or None)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {_escape(message)}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn appkit errors into a one-line message and a non-zero exit; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AppKitError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except OSError as exc:
            raise fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("APPKIT_DEBUG"):
                raise
            raise fail(f"unexpected {type(exc).__name__}: {exc} (set APPKIT_DEBUG=1 for a traceback)",
                       code=2) from None

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text.replace("\n", " "))


def is_tty() -> bool:
    return sys.stdout.isatty()
