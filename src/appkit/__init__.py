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

from appkit import errors
from appkit._query import Page
from appkit.auth import Principal, Session, User
from appkit.client import AppKit, AsyncAppKit
from appkit.model import Col, Filter, Model, Order, col
from appkit.settings import Settings

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
