"""appkit: a typed Python toolkit for application backends on Supabase.

.. code-block:: python

    from appkit import AppKit, Model, col, errors

    class Note(Model, table="notes"):
        id: int | None = None
        body: str

    app = AppKit.from_env()
    me = app.as_user(app.auth.sign_in(email="a@example.com", password="..."))
    me.table(Note).insert(Note(body="hi"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appkit import errors
from appkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from appkit._query import Page
    from appkit.auth import Principal, Session, User
    from appkit.client import AppKit, AsyncAppKit
    from appkit.model import Col, Filter, Model, Order, col
    from appkit.settings import Settings

# The SDK's names load on first use, so importing a light module (appkit.errors, the
# local stack, the CLI) does not pull in the official clients (PEP 562).
_LAZY = {
    "Page": "appkit._query",
    "Principal": "appkit.auth", "Session": "appkit.auth", "User": "appkit.auth",
    "AppKit": "appkit.client", "AsyncAppKit": "appkit.client",
    "Col": "appkit.model", "Filter": "appkit.model", "Model": "appkit.model", "Order": "appkit.model",
    "col": "appkit.model",
    "Settings": "appkit.settings",
}


# the SDK's own import order (auth before client) avoids an import cycle
__getattr__ = lazy_getattr("appkit", _LAZY, globals(), preload=dict.fromkeys(_LAZY.values()))

__all__ = [
    "AppKit",
    "AsyncAppKit",
    "Col",
    "Filter",
    "Model",
    "Order",
    "Page",
    "Principal",
    "Session",
    "Settings",
    "User",
    "col",
    "errors",
]
__version__ = "0.1.0"
