"""Rows as pydantic models, bound to a table; typed columns, filters and ordering.

.. code-block:: python

    class Note(Model, table="notes"):
        id: int | None = None
        body: str

    notes.list(col(Note.body).eq("hi"), order_by=col(Note.id).desc())

``col(Note.body)`` is a ``Col[str]`` for mypy (``Note.body`` is typed ``str`` on the class),
so ``col(Note.body).eq(3)`` is a type error. At runtime ``Note.body`` on the class is the
column object itself; on an instance it is the value, as usual.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic._internal._model_construction import ModelMetaclass

from appkit import errors

T = TypeVar("T")
M = TypeVar("M", bound="Model")


class _ModelMeta(ModelMetaclass):
    """Class-level access to a field (``Note.body``) returns its column."""

    _building = threading.local()

    def __new__(mcs, name: str, bases: tuple[type[Any], ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        # While pydantic builds a subclass it probes parents with hasattr(); columns must not
        # look like inherited attributes then (they would become defaults).
        depth = getattr(mcs._building, "depth", 0)
        mcs._building.depth = depth + 1
        try:
            return super().__new__(mcs, name, bases, namespace, **kwargs)
        finally:
            mcs._building.depth = depth

    def __getattr__(self, item: str) -> Any:
        columns = self.__dict__.get("__columns__")
        if columns is not None and item in columns and not getattr(_ModelMeta._building, "depth", 0):
            return columns[item]
        return super().__getattr__(item)  # type: ignore[misc]


class Model(BaseModel, metaclass=_ModelMeta):
    """Base class of table-bound rows: ``class Note(Model, table="notes", schema="public")``.

    ``primary_key`` (default ``"id"``) names the key ``get``/``update``/``delete`` use.
    """

    __table__: ClassVar[str | None] = None
    __schema__: ClassVar[str] = "public"
    __primary_key__: ClassVar[str] = "id"
    __columns__: ClassVar[dict[str, Col[Any]]] = {}

    def __init_subclass__(
        cls,
        *,
        table: str | None = None,
        schema: str | None = None,
        primary_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if table is not None:
            cls.__table__ = table
        if schema is not None:
            cls.__schema__ = schema
        if primary_key is not None:
            cls.__primary_key__ = primary_key

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        columns: dict[str, Col[Any]] = {}
        for name, info in cls.model_fields.items():
            column: Col[Any] = Col(cls, info.alias or name, name)
            columns[name] = column
        cls.__columns__ = columns

    @classmethod
    def table_name(cls) -> str:
        if not cls.__table__:
            raise errors.ConfigError(f"{cls.__name__} is not bound to a table: class {cls.__name__}(Model, table=...)")
        return cls.__table__

    @classmethod
    def pk_column(cls) -> Col[Any]:
        try:
            return cls.__columns__[cls.__primary_key__]
        except KeyError:
            raise errors.ConfigError(
                f"{cls.__name__} has no field {cls.__primary_key__!r} for its primary key"
            ) from None


class Col(Generic[T]):
    """A column of a model; build filters and orderings from it."""

    __slots__ = ("_adapter", "field", "model", "name")

    def __init__(self, model: type[Model], name: str, field: str) -> None:
        self.model = model
        self.name = name  # the column name on the server (the field's alias if any)
        self.field = field
        self._adapter: TypeAdapter[Any] | None = None

    def __repr__(self) -> str:
        return f"Col({self.model.__name__}.{self.field})"

    def adapter(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            info = self.model.model_fields[self.field]
            self._adapter = TypeAdapter(info.annotation if info.annotation is not None else Any)
        return self._adapter

    def validate(self, value: Any) -> Any:
        """Validate a Python value for this column (raises ``errors.ValidationError``)."""
        try:
            return self.adapter().validate_python(value)
        except PydanticValidationError as exc:
            raise errors.ValidationError(
                f"invalid value for {self.model.__name__}.{self.field}: {exc.errors()[0]['msg']}",
                code="invalid_value", details=exc.errors(include_url=False),
            ) from None

    # filters -----------------------------------------------------------------
    def eq(self, value: T) -> Filter:
        return Filter(self, "eq", value)

    def neq(self, value: T) -> Filter:
        return Filter(self, "neq", value)

    def gt(self, value: T) -> Filter:
        return Filter(self, "gt", value)

    def gte(self, value: T) -> Filter:
        return Filter(self, "gte", value)

    def lt(self, value: T) -> Filter:
        return Filter(self, "lt", value)

    def lte(self, value: T) -> Filter:
        return Filter(self, "lte", value)

    def in_(self, values: Iterable[T]) -> Filter:
        return Filter(self, "in", tuple(values))

    def like(self, pattern: str) -> Filter:
        return Filter(self, "like", pattern)

    def ilike(self, pattern: str) -> Filter:
        return Filter(self, "ilike", pattern)

    def is_null(self) -> Filter:
        return Filter(self, "is", None)

    def not_null(self) -> Filter:
        return Filter(self, "is", None, negate=True)

    def contains(self, value: T) -> Filter:
        """Array/JSON/range containment (``cs``)."""
        return Filter(self, "cs", value)

    # ordering ---------------------------------------------------------------
    def asc(self, *, nulls: Literal["first", "last"] | None = None) -> Order:
        return Order(self, desc=False, nulls=nulls)

    def desc(self, *, nulls: Literal["first", "last"] | None = None) -> Order:
        return Order(self, desc=True, nulls=nulls)


def col(attribute: T) -> Col[T]:
    """The typed column behind ``Model.field`` (``col(Note.body)`` is a ``Col[str]``)."""
    if not isinstance(attribute, Col):
        raise TypeError(
            "col() takes a model class attribute such as col(Note.body), "
            f"not {type(attribute).__name__}"
        )
    return cast("Col[T]", attribute)


def encode_value(value: Any) -> Any:
    """A Python value as PostgREST expects it in JSON bodies and filters."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return encode_value(value.value)
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode_value(v) for v in value]
    return value


_RESERVED = set(',.:()"\\ {}[]')


def _literal(value: Any) -> str:
    """One value in PostgREST filter syntax (quoted when it holds reserved characters)."""
    value = encode_value(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = str(value)
    if (text == "" or any(ch in _RESERVED or ch.isspace() for ch in text)
            or text.lower() in ("null", "true", "false")):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


@dataclass(frozen=True)
class Filter:
    """One condition, or an ``and``/``or`` of them. Combine with ``&``, ``|`` and ``~``."""

    column: Col[Any] | None
    op: str
    value: Any
    negate: bool = False
    children: tuple[Filter, ...] = ()

    def __and__(self, other: Filter) -> Filter:
        return Filter(None, "and", None, children=(self, other))

    def __or__(self, other: Filter) -> Filter:
        return Filter(None, "or", None, children=(self, other))

    def __invert__(self) -> Filter:
        return Filter(self.column, self.op, self.value, negate=not self.negate, children=self.children)

    def render_value(self) -> str:
        """The right-hand side of ``column=op.value`` (without the ``not.`` prefix)."""
        if self.op == "in":
            return "(" + ",".join(_literal(v) for v in self.value) + ")"
        if self.op == "is":
            return _literal(self.value)
        if self.op == "cs":
            v = encode_value(self.value)
            if isinstance(v, list):
                return "{" + ",".join(_literal(x) for x in v) + "}"
            if isinstance(v, dict):
                import json

                return json.dumps(v, separators=(",", ":"))
            return str(v)
        if self.op in ("like", "ilike"):
            return str(self.value).replace("%", "*")
        v = encode_value(self.value)
        if v is True:
            return "true"
        if v is False:
            return "false"
        if v is None:
            return "null"
        return str(v)

    def render(self) -> str:
        """This filter inside an ``or=(...)``/``and=(...)`` expression."""
        prefix = "not." if self.negate else ""
        if self.column is None:
            inner = ",".join(c.render() for c in self.children)
            return f"{prefix}{self.op}({inner})"
        value = self.render_value()
        if self.op not in ("in", "cs"):
            value = _literal(value) if self.op not in ("is",) else value
        return f"{self.column.name}.{prefix}{self.op}.{value}"


@dataclass(frozen=True)
class Order:
    column: Col[Any]
    desc: bool = False
    nulls: Literal["first", "last"] | None = None


def to_row(model: type[M], data: Any) -> M:
    """A server row as ``model`` (selected columns may be a subset of the fields)."""
    return model.model_validate(data)


def parse_rows(model: type[M], data: Any, partial: bool = False) -> list[M]:
    if not isinstance(data, list):
        raise errors.UnexpectedResponse(f"expected a JSON array of rows, got {type(data).__name__}",
                                        code="unexpected_response")
    if partial:
        return [_partial(model, row) for row in data]
    try:
        return [model.model_validate(row) for row in data]
    except PydanticValidationError as exc:
        raise errors.UnexpectedResponse(
            f"a row from {model.__name__}'s table does not match the model: {exc.errors()[0]['msg']}",
            code="row_mismatch", details=exc.errors(include_url=False),
        ) from None


def _partial(model: type[M], row: Any) -> M:
    if not isinstance(row, Mapping):
        raise errors.UnexpectedResponse("expected a JSON object per row", code="unexpected_response")
    values: dict[str, Any] = {}
    by_name = {c.name: c for c in model.__columns__.values()}
    for key, value in row.items():
        column = by_name.get(key)
        if column is not None:
            values[column.field] = column.adapter().validate_python(value)
    return cast("M", model.model_construct(_fields_set=set(values), **values))


def dump_row(row: Model | Mapping[str, Any], *, exclude_unset: bool = True) -> dict[str, Any]:
    """A model (only the fields set explicitly, so server defaults apply) or mapping as JSON."""
    if isinstance(row, Model):
        return row.model_dump(mode="json", by_alias=True, exclude_unset=exclude_unset)
    return {str(k): encode_value(v) for k, v in row.items()}


def column_names(columns: Sequence[Col[Any]] | None) -> str:
    if not columns:
        return "*"
    return ",".join(c.name for c in columns)


__all__ = ["Col", "Filter", "Model", "Order", "col", "dump_row", "encode_value", "parse_rows"]
