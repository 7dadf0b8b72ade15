"""The query string of a table or function request, parsed into a :class:`Plan`."""

from __future__ import annotations

from dataclasses import dataclass, field

from appkit.local.rest.http import RestRequest
from appkit.local.rest.names import parse_field, split_path
from appkit.local.rest.parser import (
    NodeQuery,
    parse_int,
    parse_list,
    parse_logic,
    parse_operation,
    parse_order,
    query_pairs,
)
from appkit.local.rest.select import SelectItem, SelectStar, parse_select


@dataclass
class Plan:
    """Parsed query string for a table or function."""

    select: list[SelectItem]
    queries: dict[tuple[str, ...], NodeQuery]
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    args: dict[str, str] = field(default_factory=dict)
    has_limit: bool = False


def _unquote(name: str) -> str:
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name


def parse_plan(req: RestRequest, arg_names: set[str] | None = None,
               pairs: list[tuple[str, str]] | None = None) -> Plan:
    select_text: str | None = None
    queries: dict[tuple[str, ...], NodeQuery] = {}
    plan = Plan([SelectStar()], queries)
    for key, value in (query_pairs(req.query) if pairs is None else pairs):
        if key == "apikey":
            continue
        if arg_names is not None and key in arg_names:
            plan.args[key] = value
            continue
        if key == "select":
            select_text = value
            continue
        if key == "columns":
            plan.columns = parse_list("(" + value + ")", "columns")
            continue
        if key == "on_conflict":
            plan.on_conflict = parse_list("(" + value + ")", "on_conflict")
            continue
        path, last = split_path(key)
        negate = False
        if path and path[-1] == "not" and last in ("or", "and"):
            path = path[:-1]
            negate = True
        tpath = tuple(_unquote(p) for p in path)
        node = queries.setdefault(tpath, NodeQuery())
        if last in ("or", "and"):
            node.filters.append(parse_logic(last, value, negate))
        elif last == "order":
            node.order = parse_order(value)
        elif last == "limit":
            node.limit = parse_int(value, "limit")
            plan.has_limit = True
        elif last == "offset":
            node.offset = parse_int(value, "offset")
        else:
            f = parse_field(last)
            node.filters.append(parse_operation(f, value, "filter"))
    if select_text is not None:
        plan.select = parse_select(select_text)
    return plan
