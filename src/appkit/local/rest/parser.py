"""The query string's grammar: horizontal filters (operators, quantifiers, lists), logic
trees (``or=(...)``), order, limits and offsets, and the raw key/value pairs.

Everything here is pure string handling; identifiers are checked against the schema
cache later and values are always bound as query parameters. The ``select`` parameter has a
grammar of its own (``select.py``), names and columns too (``names.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from appkit.local.rest.errors import parse_error
from appkit.local.rest.names import Field, Scanner

OPERATORS = {
    "eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is", "isdistinct",
    "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr", "nxl", "nxr", "adj",
}
QUANTIFIABLE = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
FTS_OPS = {"fts", "plfts", "phfts", "wfts"}
RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict", "or", "and", "not.or", "not.and"}


@dataclass
class Filter:
    field: Field
    op: str
    value: str | list[str]
    negate: bool = False
    quant: str | None = None  # "any" | "all"
    config: str | None = None  # fts language


@dataclass
class Logic:
    op: str  # "and" | "or"
    children: list[Filter | Logic]
    negate: bool = False


@dataclass
class OrderTerm:
    field: Field
    desc: bool = False
    nulls: str | None = None  # "first" | "last"
    relation: str | None = None  # ordering by a to-one embedded resource's column


@dataclass
class NodeQuery:
    """Filters, order and paging for one resource (the root or an embedded path)."""

    filters: list[Filter | Logic] = field(default_factory=list)
    order: list[OrderTerm] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def parse_operation(column: Field, value: str, what: str) -> Filter:
    """``[not.]op[(any|all)|(config)].value`` for one column."""
    negate = False
    rest = value
    if rest.startswith("not."):
        negate = True
        rest = rest[4:]
    op_part, dot, val = rest.partition(".")
    if not dot:
        raise parse_error(f'"failed to parse filter ({value})" (line 1, column {len(value) + 1})',
                          details="unexpected end of input expecting an operator")
    quant: str | None = None
    config: str | None = None
    m = re.fullmatch(r"([a-z]+)(?:\(([^()]*)\))?", op_part)
    if not m or m.group(1) not in OPERATORS:
        raise parse_error(f'"failed to parse filter ({value})" (line 1, column 1)',
                          details=f"unknown operator {op_part!r}")
    op = m.group(1)
    modifier = m.group(2)
    if modifier is not None:
        if op in QUANTIFIABLE and modifier in ("any", "all"):
            quant = modifier
        elif op in FTS_OPS and modifier:
            config = modifier
        else:
            raise parse_error(f'"failed to parse filter ({value})" (line 1, column 1)',
                              details=f"invalid modifier {modifier!r} for {op}")
    parsed: str | list[str] = val
    if op == "in":
        parsed = parse_list(val, what)
    elif op == "is":
        low = val.lower()
        if low not in ("null", "not_null", "true", "false", "unknown"):
            raise parse_error(f'"failed to parse filter ({value})" (line 1, column 4)',
                              details="is accepts null, not_null, true, false or unknown")
        parsed = low
    elif quant is not None:
        parsed = _list_or_array(val, what)
    return Filter(column, op, parsed, negate, quant, config)


def _list_or_array(val: str, what: str) -> list[str]:
    if val.startswith("{") and val.endswith("}"):
        return parse_list("(" + val[1:-1] + ")", what)
    return parse_list(val, what)


class Quoted(str):
    """A list item that was written in double quotes: always a string (``"null"`` is not NULL)."""

    __slots__ = ()


def parse_list(val: str, what: str) -> list[str]:
    """``(a,"b,c",d)`` -> ["a", "b,c", "d"]; quoted items are :class:`Quoted`."""
    val = val.strip()
    if not (val.startswith("(") and val.endswith(")")):
        raise parse_error(f'"failed to parse {what} ({val})" (line 1, column 1)',
                          details="expecting a list in parentheses")
    inner = val[1:-1]
    out: list[str] = []
    if inner == "":
        return out
    buf: list[str] = []
    i = 0
    quoted = False
    was_quoted = False
    while i < len(inner):
        ch = inner[i]
        if quoted:
            if ch == "\\" and i + 1 < len(inner):
                buf.append(inner[i + 1])
                i += 2
                continue
            if ch == '"':
                quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = True
            was_quoted = True
        elif ch == ",":
            out.append(Quoted("".join(buf)) if was_quoted else "".join(buf).strip())
            buf = []
            was_quoted = False
        else:
            buf.append(ch)
        i += 1
    if quoted:
        raise parse_error(f'"failed to parse {what} ({val})"', details="unterminated quote")
    out.append(Quoted("".join(buf)) if was_quoted else "".join(buf).strip())
    return out


def parse_logic(op: str, value: str, negate: bool) -> Logic:
    """``(a.eq.1,or(b.gt.2,c.is.null))``."""
    value = value.strip()
    if not (value.startswith("(") and value.endswith(")")):
        raise parse_error(f'"failed to parse logic tree ({value})" (line 1, column 1)',
                          details="expecting '('")
    return Logic(op, _logic_children(value[1:-1], value), negate)


def _split_top(text: str, full: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            buf.append(ch)
            if ch == "\\" and i + 1 < len(text):
                buf.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            buf.append(ch)
        elif ch in "({":
            depth += 1
            buf.append(ch)
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise parse_error(f'"failed to parse logic tree ({full})"', details="unbalanced parentheses")
            buf.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if depth != 0 or quoted:
        raise parse_error(f'"failed to parse logic tree ({full})"', details="unbalanced parentheses or quotes")
    parts.append("".join(buf))
    return parts


def _logic_children(text: str, full: str) -> list[Filter | Logic]:
    children: list[Filter | Logic] = []
    for part in _split_top(text, full):
        part = part.strip()
        if not part:
            raise parse_error(f'"failed to parse logic tree ({full})"', details="empty condition")
        negate = False
        body = part
        if body.startswith("not.") and (body[4:].startswith("or(") or body[4:].startswith("and(")):
            negate = True
            body = body[4:]
        m = re.match(r"^(or|and)\(", body)
        if m and body.endswith(")"):
            children.append(Logic(m.group(1), _logic_children(body[len(m.group(0)):-1], full), negate))
            continue
        # field.op.value — the field may be quoted and may carry a json path
        sc = Scanner(body, "logic tree")
        f = sc.field()
        if sc.peek() != ".":
            raise sc.error("expecting '.' after the column")
        sc.i += 1
        rest = body[sc.i:]
        flt = parse_operation(f, rest, "logic tree")
        if isinstance(flt.value, str) and flt.value.startswith('"') and flt.value.endswith('"') \
                and len(flt.value) >= 2 and flt.op not in ("in",):
            flt.value = flt.value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        children.append(flt)
    return children


# -- order ------------------------------------------------------------------------------------------

def parse_order(value: str) -> list[OrderTerm]:
    terms: list[OrderTerm] = []
    for part in _split_top(value, value):
        part = part.strip()
        if not part:
            raise parse_error(f'"failed to parse order ({value})" (line 1, column 1)', details="empty term")
        sc = Scanner(part, "order")
        relation: str | None = None
        f = sc.field()
        if sc.peek() == "(":
            # ordering by a to-one embedded resource: rel(col)
            relation = f.name
            if f.json_path:
                raise sc.error("unexpected json path")
            sc.i += 1
            f = sc.field()
            sc.expect(")")
        term = OrderTerm(f, relation=relation)
        while sc.peek() == ".":
            sc.i += 1
            word = sc.name(stop=".")
            if word in ("asc", "desc"):
                term.desc = word == "desc"
            elif word in ("nullsfirst", "nullslast"):
                term.nulls = "first" if word == "nullsfirst" else "last"
            else:
                raise sc.error(f"unexpected {word!r}")
        if not sc.eof():
            raise sc.error("unexpected input")
        terms.append(term)
    return terms


def parse_int(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise parse_error(f'"failed to parse {what} parameter ({value})" (line 1, column 1)',
                          details="expecting an integer") from None
    if n < 0:
        raise parse_error(f'"failed to parse {what} parameter ({value})" (line 1, column 1)',
                          details="expecting a non-negative integer")
    return n


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decode a query string keeping repeated keys and order (``+`` means space)."""
    out: list[tuple[str, str]] = []
    if not raw:
        return out
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        try:
            key = unquote(k.replace("+", " "), encoding="utf-8", errors="strict")
            val = unquote(v.replace("+", " "), encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise parse_error("invalid UTF-8 in the query string") from None
        out.append((key, val))
    return out
