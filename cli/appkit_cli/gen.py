"""``appkit gen``: code generated from the live database schema (``appkit gen models``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from appkit.db.codegen import check_schemas, generate_models
from appkit_cli._common import DbUrlOption, WorkdirOption, console, fail, handle_errors

gen_app = typer.Typer(help="Generate typed code from the database schema.", no_args_is_help=True)


@gen_app.command("models")
@handle_errors
def models(
    schema: Annotated[list[str] | None, typer.Option("--schema", "-s", help="Schema to generate (repeatable; "
                                                                             "default: public).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.",
                                                show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if --output is not what would be generated "
                                                        "(for CI); writes nothing.")] = False,
    workdir: WorkdirOption = None,
    db_url: DbUrlOption = None,
) -> None:
    """Typed appkit Model classes for the tables and views of the schema, and typed RPC wrappers.

    The output is deterministic and passes `mypy --strict`; `--check -o FILE` tells CI when
    FILE is out of date.
    """
    from appkit.local import write_atomic

    schemas = check_schemas(schema or ["public"])
    if check and output is None:
        raise fail("--check needs --output FILE (the file to compare)")
    if output is not None and output.exists() and output.is_dir():
        raise fail(f"{output} is a directory")
    if db_url:
        url = db_url
    else:  # the local stack's modules load only when its URL is needed
        from appkit.local import resolve_workdir
        from appkit_cli.db import target_db_url

        url = target_db_url(resolve_workdir(workdir), None)
    source = generate_models(url, schemas)
    args = " ".join(f"--schema {s}" for s in schemas)
    if check:
        assert output is not None
        try:
            current = output.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise fail(f"{output} does not exist: run `appkit gen models {args} -o {output}`") from None
        if current != source:
            raise fail(f"{output} is out of date: run `appkit gen models {args} -o {output}`")
        console.print(f"{output} is up to date.", highlight=False)
        return
    if output is None:
        sys.stdout.write(source)
        return
    if not output.parent.is_dir():
        raise fail(f"{output.parent} is not a directory")
    write_atomic(output, source.encode(), 0o644)
    console.print(f"Wrote {output}", highlight=False)
