"""Parse PostgREST's query-string grammar: select, filters, logic trees, order, Prefer.

Everything here is pure string handling; identifiers are checked against the schema
cache later and values are always bound as query parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from appkit.local.rest.errors import RestError, parse_error

OPERATORS = {
    "eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is", "isdistinct",
    "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr", "nxl", "nxr", "adj",
}
QUANTIFIABLE = {"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"}
FTS_OPS = {"fts", "plfts", "phfts", "wfts"}
RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict", "or", "and", "not.or", "not.and"}
CAST_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?$")
AGGREGATES = {"count", "sum", "avg", "max", "min"}


@dataclass
class Field:
    name: str
    json_path: list[tuple[str, str]] = field(default_factory=list)  # ("->" | "->>", key)

    @property
    def output_name(self) -> str:
        if self.json_path:
            return self.json_path[-1][1]
        return self.name


@dataclass
class SelectField:
    field: Field
    alias: str | None = None
    cast: str | None = None
    #: PostgREST 12's aggregate (``amount.sum()``, ``count()``): its result is named after
    #: the function unless aliased; ``cast`` then applies to the result
    aggregate: str | None = None

    @property
    def output_name(self) -> str:
        if self.alias:
            return self.alias
        return self.aggregate or self.field.output_name


@dataclass
class SelectStar:
    pass


@dataclass
class SelectEmbed:
    relation: str
    alias: str | None = None
    hint: str | None = None
    join: str | None = None  # "inner" | "left"
    spread: bool = False
    items: list[SelectItem] = field(default_factory=list)

    @property
    def output_name(self) -> str:
        return self.alias or self.relation


SelectItem = SelectField | SelectStar | SelectEmbed


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


# -- low-level scanning ----------------------------------------------------------------------

class _Scanner:
    def __init__(self, text: str, what: str) -> None:
        self.s = text
        self.i = 0
        self.what = what

    def eof(self) -> bool:
        return self.i >= len(self.s)

    def peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    def error(self, msg: str) -> RestError:
        return parse_error(
            f'"failed to parse {self.what} ({self.s})" (line 1, column {self.i + 1})', details=msg,
        )

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise self.error(f"expecting {token!r}")
        self.i += len(token)

    def name(self, stop: str = ",()!:.-\"") -> str:
        """An identifier: "quoted" or a run of characters without the stop characters."""
        if self.peek() == '"':
            return self.quoted()
        start = self.i
        while not self.eof():
            ch = self.s[self.i]
            if ch in stop:
                # '-' only ends a name when it starts '->'
                if ch == "-" and self.peek(2) != "->":
                    self.i += 1
                    continue
                break
            self.i += 1
        out = self.s[start:self.i].strip()
        if not out:
            raise self.error("expecting an identifier")
        return out

    def quoted(self) -> str:
        self.expect('"')
        out: list[str] = []
        while True:
            if self.eof():
                raise self.error("unterminated quoted identifier")
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                break
            out.append(ch)
            self.i += 1
        if not out:
            raise self.error("empty quoted identifier")
        return "".join(out)

    def field(self) -> Field:
        f = Field(self.name())
        while self.peek(2) == "->":
            op = "->>" if self.peek(3) == "->>" else "->"
            self.i += len(op)
            key = self.name()
            f.json_path.append((op, key))
        return f


# -- select ------------------------------------------------------------------------------------

def parse_select(text: str) -> list[SelectItem]:
    text = text.strip()
    if not text:
        return [SelectStar()]
    sc = _Scanner(text, "select parameter")
    items = _select_list(sc, depth=0)
    if not sc.eof():
        raise sc.error("unexpected input")
    return items


def _select_list(sc: _Scanner, depth: int) -> list[SelectItem]:
    if depth > 16:
        raise sc.error("embedding is nested too deeply")
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(sc, depth))
        if sc.peek() == ",":
            sc.i += 1
            continue
        return items


def _select_item(sc: _Scanner, depth: int) -> SelectItem:
    while sc.peek() == " ":
        sc.i += 1
    if sc.peek() == "*":
        sc.i += 1
        return SelectStar()
    if sc.peek(3) == "...":
        sc.i += 3
        embed = _embed_rest(sc, sc.name(), None, depth)
        if embed is None:
            raise sc.error("spread needs an embedded resource")
        embed.spread = True
        return embed
    alias: str | None = None
    first = sc.name()
    if sc.peek() == ":" and sc.peek(2) != "::":
        sc.i += 1
        alias = first
        first = sc.name()
    if first == "count" and sc.peek(2) == "()":  # count() of the rows, not an embedded "count"
        sc.i += 2
        return SelectField(Field("*"), alias, _cast(sc), "count")
    embed = _embed_rest(sc, first, alias, depth)
    if embed is not None:
        return embed
    f = Field(first)
    while sc.peek(2) == "->":
        op = "->>" if sc.peek(3) == "->>" else "->"
        sc.i += len(op)
        f.json_path.append((op, sc.name()))
    if sc.peek() == ".":
        m = re.match(r"\.(\w+)\(\)", sc.s[sc.i:])
        if m and m.group(1) in AGGREGATES:
            sc.i += m.end()
            return SelectField(f, alias, _cast(sc), m.group(1))
        raise sc.error("unexpected '.'")
    return SelectField(f, alias, _cast(sc))


def _cast(sc: _Scanner) -> str | None:
    if sc.peek(2) != "::":
        return None
    sc.i += 2
    start = sc.i
    while not sc.eof() and sc.s[sc.i] not in ",()":
        sc.i += 1
    cast = sc.s[start:sc.i].strip()
    if not CAST_RE.match(cast):
        raise sc.error(f"invalid cast {cast!r}")
    return cast


def _embed_rest(sc: _Scanner, name: str, alias: str | None, depth: int) -> SelectEmbed | None:
    """After a name: ``!hint!inner(...)`` makes it an embedded resource."""
    save = sc.i
    hint: str | None = None
    join: str | None = None
    while sc.peek() == "!":
        sc.i += 1
        word = sc.name()
        if word in ("inner", "left"):
            join = word
        elif hint is None:
            hint = word
        else:
            raise sc.error("too many embedding hints")
    if sc.peek() != "(":
        if hint or join:
            raise sc.error("expecting '(' after the embedding hint")
        sc.i = save
        return None
    sc.i += 1
    if sc.peek() == ")":
        items: list[SelectItem] = []
    else:
        items = _select_list(sc, depth + 1)
    sc.expect(")")
    return SelectEmbed(name, alias, hint, join, False, items)


# -- filters -------------------------------------------------------------------------------------

def split_path(key: str) -> tuple[list[str], str]:
    """``a.b.col->x`` -> (["a", "b"], "col->x"), honouring double quotes."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and quoted and i + 1 < len(key):
            buf.append(key[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts[:-1], parts[-1]


def parse_field(text: str, what: str = "filter") -> Field:
    sc = _Scanner(text, what)
    f = sc.field()
    if not sc.eof():
        raise sc.error("unexpected input after the column")
    return f


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
        sc = _Scanner(body, "logic tree")
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
        sc = _Scanner(part, "order")
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


# -- headers ------------------------------------------------------------------------------------------

@dataclass
class Prefer:
    return_: str | None = None
    count: str | None = None
    resolution: str | None = None
    missing: str | None = None
    tx: str | None = None
    params: str | None = None
    handling: str | None = None
    max_affected: int | None = None
    timezone: str | None = None
    invalid: list[str] = field(default_factory=list)

    def applied(self) -> str:
        out: list[str] = []
        if self.resolution:
            out.append(f"resolution={self.resolution}")
        if self.missing:
            out.append(f"missing={self.missing}")
        if self.return_:
            out.append(f"return={self.return_}")
        if self.count:
            out.append(f"count={self.count}")
        if self.tx:
            out.append(f"tx={self.tx}")
        if self.handling:
            out.append(f"handling={self.handling}")
        if self.max_affected is not None:
            out.append(f"max-affected={self.max_affected}")
        if self.timezone:
            out.append(f"timezone={self.timezone}")
        return ", ".join(out)


_PREFER_VALUES = {
    "return": {"minimal", "headers-only", "representation"},
    "count": {"exact", "planned", "estimated"},
    "resolution": {"merge-duplicates", "ignore-duplicates"},
    "missing": {"default", "null"},
    "tx": {"commit", "rollback"},
    "params": {"single-object", "multiple-objects"},
    "handling": {"strict", "lenient"},
}


def parse_prefer(headers: list[str]) -> Prefer:
    p = Prefer()
    for header in headers:
        for item in header.split(","):
            item = item.strip()
            if not item:
                continue
            key, _, val = item.partition("=")
            key = key.strip()
            val = val.strip()
            if key == "timezone" and val:
                p.timezone = val
                continue
            if key == "max-affected":
                try:
                    p.max_affected = int(val)
                except ValueError:
                    p.invalid.append(item)
                continue
            allowed = _PREFER_VALUES.get(key)
            if allowed is None or val not in allowed:
                p.invalid.append(item)
                continue
            attr = "return_" if key == "return" else key
            setattr(p, attr, val)
    return p


def parse_range(header: str) -> tuple[int, int | None] | None:
    m = re.fullmatch(r"\s*(?:items=)?(\d+)-(\d*)\s*", header)
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else None
    if hi is not None and hi < lo:
        raise RestError(416, "PGRST103", "Requested range not satisfiable",
                       details="The lower boundary must be lower than or equal to the upper boundary "
                               "in the Range header.")
    return lo, hi


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
