"""Module-level lazy names (PEP 562), so a light import does not load heavy modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_getattr(
    package: str, names: dict[str, str], namespace: dict[str, Any], *, preload: Iterable[str] = ()
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` on first use and caches the value.

    ``preload`` modules are imported first, in order (to keep an import order that avoids cycles).
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for m in preload:
            importlib.import_module(m)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
