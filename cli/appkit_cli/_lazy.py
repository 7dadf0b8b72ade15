"""Sub-commands loaded on first use: ``appkit gen models`` imports the gen module only, ``appkit --help`` none.

Each entry of ``LAZY`` names the module and attribute of a sub-app (a ``typer.Typer``) or a
single command function, and the one-line help ``appkit --help`` shows for it without
importing it (a test keeps that line equal to the sub-app's own help). Shell completion
resolves, and so loads, the sub-commands it walks into.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    module: str
    attr: str
    help: str
    command: bool = False  # a single command function rather than a Typer sub-app


#: name -> where it lives; filled by ``appkit_cli.main``
LAZY: dict[str, Lazy] = {}


def load(name: str) -> Any:
    """The click command for ``name``, built by typer exactly as ``add_typer``/``command`` would."""
    entry = LAZY[name]
    target = getattr(importlib.import_module(entry.module), entry.attr)
    holder = typer.Typer()
    if entry.command:
        holder.command(name)(target)
        holder.callback()(lambda: None)  # a group, so the command keeps its name
    else:
        holder.add_typer(target, name=name)
    group = typer.main.get_group(holder)
    return group.commands[name]


class LazyGroup(TyperGroup):
    """The root group: registered commands as usual, plus ``LAZY`` entries imported when resolved."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in LAZY if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in LAZY:
            return self.commands.get(cmd_name)
        if self._listing:
            return TyperGroup(name=cmd_name, help=LAZY[cmd_name].help)  # a row of the help's table only
        command = load(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
