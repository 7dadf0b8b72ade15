"""Shared CLI plumbing: one-line errors, consoles, the --workdir option."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from appkit.errors import AppKitError

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


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn appkit errors into a one-line message and a non-zero exit; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AppKitError as exc:
            raise fail(_escape(str(exc))) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except OSError as exc:
            raise fail(_escape(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("APPKIT_DEBUG"):
                raise
            raise fail(_escape(f"unexpected {type(exc).__name__}: {exc} (set APPKIT_DEBUG=1 for a traceback)"),
                       code=2) from None

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text.replace("\n", " "))


def is_tty() -> bool:
    return sys.stdout.isatty()
