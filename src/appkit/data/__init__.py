"""Typed tables: ``app.table(Model)`` gives a ``Table`` (sync) or ``AsyncTable`` (async)."""

from appkit._async.table import AsyncTable
from appkit._query import Page
from appkit._sync.table import Table
from appkit.model import Col, Filter, Model, Order, col

__all__ = ["AsyncTable", "Col", "Filter", "Model", "Order", "Page", "Table", "col"]
