"""Postgres text values to JSON (as ``to_jsonb`` renders them) and postgres_changes filters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

INT_TYPES = frozenset({"int2", "int4", "int8", "oid", "xid", "cid", "regproc"})
FLOAT_TYPES = frozenset({"float4", "float8", "numeric", "money"})
JSON_TYPES = frozenset({"json", "jsonb"})


def _timestamp(text: str, with_tz: bool) -> str:
    """``2024-01-02 03:04:05.6+00`` -> ``2024-01-02T03:04:05.6+00:00`` (to_jsonb's form)."""
    if text in ("infinity", "-infinity"):
        return text
    out = text.replace(" ", "T", 1)
    if with_tz:
        # the offset is the trailing [+-]HH or [+-]HH:MM (or HH:MM:SS)
        for i in range(len(out) - 1, 10, -1):
            if out[i] in "+-":
                offset = out[i + 1:]
                if len(offset) == 2:
                    out = out + ":00"
                break
    return out


def _number(text: str) -> Any:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if not value.is_finite():
        return text
    if value == value.to_integral_value() and "." not in text and "e" not in text.lower():
        return int(value)
    return float(value)


def _parse_array(text: str) -> list[Any] | None:
    """A one- or multi-dimensional Postgres array literal into nested lists of strings/None."""
    if not text.startswith("{"):
        if "=" in text and text.startswith("["):  # explicit bounds: [1:2]={...}
            text = text.split("=", 1)[1]
        else:
            return None
    pos = 0

    def parse() -> list[Any]:
        nonlocal pos
        assert text[pos] == "{"
        pos += 1
        items: list[Any] = []
        if text[pos] == "}":
            pos += 1
            return items
        while True:
            ch = text[pos]
            if ch == "{":
                items.append(parse())
            elif ch == '"':
                pos += 1
                buf: list[str] = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                pos += 1
                items.append("".join(buf))
            else:
                start = pos
                while text[pos] not in ",}":
                    pos += 1
                raw = text[start:pos].strip()
                items.append(None if raw == "NULL" else raw)
            if text[pos] == ",":
                pos += 1
                continue
            if text[pos] == "}":
                pos += 1
                return items

    try:
        return parse()
    except (IndexError, AssertionError):
        return None


def to_json_value(typname: str, text: str | None) -> Any:
    """Convert one column's text output to the JSON value ``to_jsonb`` would give."""
    if text is None:
        return None
    if typname.startswith("_"):
        parsed = _parse_array(text)
        if parsed is None:
            return text
        element = typname[1:]

        def conv(item: Any) -> Any:
            if isinstance(item, list):
                return [conv(x) for x in item]
            return to_json_value(element, item)

        return conv(parsed)
    if typname == "bool":
        return text == "t"
    if typname in INT_TYPES:
        try:
            return int(text)
        except ValueError:
            return text
    if typname in FLOAT_TYPES:
        return _number(text)
    if typname in JSON_TYPES:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if typname == "timestamp":
        return _timestamp(text, False)
    if typname == "timestamptz":
        return _timestamp(text, True)
    return text


# -- filters ---------------------------------------------------------------------------

FILTER_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch",
              "isdistinct")


class FilterError(ValueError):
    pass


def _like_regex(pattern: str, flags: int) -> re.Pattern[str]:
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), flags | re.DOTALL)


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str | tuple[str, ...]
    negate: bool = False

    def matches(self, record: dict[str, Any], typname: str | None) -> bool:
        """SQL semantics: a comparison with NULL is unknown, and unknown never matches
        (negated or not); ``is`` and ``isdistinct`` are the NULL-aware ones."""
        if self.column not in record:
            return False
        result = self._test(record[self.column], typname)
        if result is None:
            return False
        return result != self.negate

    def _test(self, actual: Any, typname: str | None) -> bool | None:
        if self.op == "is":
            want = str(self.value).lower()
            if want == "null":
                return actual is None
            if want in ("true", "false"):
                return actual is (want == "true")
            return None
        if self.op == "isdistinct":
            assert isinstance(self.value, str)
            if actual is None:
                return self.value.lower() != "null"
            return _compare(actual, self.value, typname) != 0
        if actual is None:
            return None
        if self.op == "in":
            assert isinstance(self.value, tuple)
            return any(_compare(actual, v, typname) == 0 for v in self.value)
        assert isinstance(self.value, str)
        if self.op in ("like", "ilike", "match", "imatch"):
            text = actual if isinstance(actual, str) else json.dumps(actual)
            flags = re.IGNORECASE if self.op in ("ilike", "imatch") else 0
            try:
                if self.op in ("like", "ilike"):
                    return _like_regex(self.value, flags).fullmatch(text) is not None
                return re.search(self.value, text, flags) is not None
            except re.error:
                return None
        cmp = _compare(actual, self.value, typname)
        if cmp is None:
            return None
        return {
            "eq": cmp == 0, "neq": cmp != 0, "lt": cmp < 0, "lte": cmp <= 0, "gt": cmp > 0, "gte": cmp >= 0,
        }[self.op]


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    buf: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_filters(text: str | None) -> list[Filter]:
    """``"id=eq.1"``, ``"status=in.(a,b)"``, several joined by commas (AND)."""
    if text is None or text == "":
        return []
    filters: list[Filter] = []
    for part in _split_top(text, ","):
        column, sep, rest = part.partition("=")
        negate = rest.startswith("not.")
        if negate:
            rest = rest[4:]
        op, dot, value = rest.partition(".")
        if not sep or not dot or not column:
            raise FilterError(f"invalid filter: {part!r} (expected column=operator.value)")
        if op not in FILTER_OPS:
            raise FilterError(f"invalid filter operator {op!r} in {part!r}")
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise FilterError(f"invalid filter: {part!r} (in expects a list like in.(a,b))")
            items = tuple(v.strip().strip('"') for v in _split_top(value[1:-1], ",") if v.strip() != "")
            if len(items) > 100:
                raise FilterError("filter value for `in` cannot have more than 100 values")
            filters.append(Filter(column, op, items, negate))
        else:
            if op == "is" and value.lower() not in ("null", "true", "false"):
                raise FilterError(f"invalid filter: {part!r} (is expects null, true or false)")
            if op in ("match", "imatch"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise FilterError(f"invalid regular expression in {part!r}: {exc}") from None
            filters.append(Filter(column, op, value, negate))
    return filters


def _coerce(expected: str, typname: str | None) -> Any:
    t = typname or ""
    if t in INT_TYPES:
        return int(expected)
    if t in FLOAT_TYPES:
        return Decimal(expected)
    if t == "bool":
        if expected.lower() in ("t", "true", "1", "yes", "on"):
            return True
        if expected.lower() in ("f", "false", "0", "no", "off"):
            return False
        raise ValueError(expected)
    if t in ("timestamp", "timestamptz"):
        return _as_datetime(expected)
    if t == "date":
        return date.fromisoformat(expected)
    if t == "time":
        return time.fromisoformat(expected)
    return expected


def _as_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace(" ", "T", 1).replace("Z", "+00:00"))
    return value


def _compare(actual: Any, expected: str, typname: str | None) -> int | None:
    try:
        want = _coerce(expected, typname)
        have: Any = actual
        if isinstance(want, Decimal):
            have = Decimal(str(actual))
        elif isinstance(want, datetime):
            have = _as_datetime(str(actual))
            if (have.tzinfo is None) != (want.tzinfo is None):
                have, want = have.replace(tzinfo=None), want.replace(tzinfo=None)
        elif isinstance(want, date):
            have = date.fromisoformat(str(actual))
        elif isinstance(want, time):
            have = time.fromisoformat(str(actual))
        elif isinstance(want, str) and not isinstance(have, str):
            have = json.dumps(have) if isinstance(have, (dict, list)) else str(have)
            if isinstance(actual, bool):
                have = "true" if actual else "false"
    except (ValueError, InvalidOperation, TypeError):
        return None
    try:
        if have == want:
            return 0
        return -1 if have < want else 1
    except TypeError:
        return None
