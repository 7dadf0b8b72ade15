"""The ``select`` parameter's grammar: columns, aliases, casts, aggregates, ``*`` and the
embedding tree (``alias:relation!hint!inner(...)``, ``...spread``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appkit.local.rest.names import Field, Scanner

CAST_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?$")
AGGREGATES = {"count", "sum", "avg", "max", "min"}


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


def parse_select(text: str) -> list[SelectItem]:
    text = text.strip()
    if not text:
        return [SelectStar()]
    sc = Scanner(text, "select parameter")
    items = _select_list(sc, depth=0)
    if not sc.eof():
        raise sc.error("unexpected input")
    return items


def _select_list(sc: Scanner, depth: int) -> list[SelectItem]:
    if depth > 16:
        raise sc.error("embedding is nested too deeply")
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(sc, depth))
        if sc.peek() == ",":
            sc.i += 1
            continue
        return items


def _select_item(sc: Scanner, depth: int) -> SelectItem:
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


def _cast(sc: Scanner) -> str | None:
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


def _embed_rest(sc: Scanner, name: str, alias: str | None, depth: int) -> SelectEmbed | None:
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
