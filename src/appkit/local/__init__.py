"""The local stack's public surface: start, inspect and stop a stack, read its config and mail.

Other packages (the CLI, the SDK's tests, tools) import these names from ``appkit.local``
only, never from its modules. Importing this package is light: each name loads its module
on first use (``appkit._lazy``), so ``import appkit.local`` pulls in neither psycopg nor
the HTTP services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from appkit.local.atomic import write_atomic
    from appkit.local.auth.mail import list_messages
    from appkit.local.config import DEFAULT_JWT_SECRET, ProjectConfig, load_config
    from appkit.local.logs import JsonFormatter, RequestIdFilter
    from appkit.local.stack import (
        LocalStack,
        StackInfo,
        StackPaths,
        is_running,
        read_info,
        remove_data,
        reset_database,
        resolve_workdir,
        stop_stack,
    )

_LAZY = {
    "LocalStack": "appkit.local.stack",
    "StackInfo": "appkit.local.stack",
    "StackPaths": "appkit.local.stack",
    "is_running": "appkit.local.stack",
    "read_info": "appkit.local.stack",
    "remove_data": "appkit.local.stack",
    "reset_database": "appkit.local.stack",
    "resolve_workdir": "appkit.local.stack",
    "stop_stack": "appkit.local.stack",
    "write_atomic": "appkit.local.atomic",
    "DEFAULT_JWT_SECRET": "appkit.local.config",
    "ProjectConfig": "appkit.local.config",
    "load_config": "appkit.local.config",
    "list_messages": "appkit.local.auth.mail",
    "JsonFormatter": "appkit.local.logs",
    "RequestIdFilter": "appkit.local.logs",
}

__getattr__ = lazy_getattr("appkit.local", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_JWT_SECRET",
    "JsonFormatter",
    "LocalStack",
    "ProjectConfig",
    "RequestIdFilter",
    "StackInfo",
    "StackPaths",
    "is_running",
    "list_messages",
    "load_config",
    "read_info",
    "remove_data",
    "reset_database",
    "resolve_workdir",
    "stop_stack",
    "write_atomic",
]
