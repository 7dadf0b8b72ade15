"""Model binding, typed columns and filter rendering, cursors."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from appkit import Model, col, errors
from appkit._query import decode_cursor, encode_cursor


class Note(Model, table="notes"):
    id: int | None = None
    owner: uuid.UUID | None = None
    body: str
    at: dt.datetime | None = None


class Other(Model, table="others", schema="app", primary_key="key"):
    key: str


def test_binding_and_columns() -> None:
    assert (Note.__table__, Note.__schema__, Note.__primary_key__) == ("notes", "public", "id")
    assert (Other.table_name(), Other.__schema__, Other.pk_column().name) == ("others", "app", "key")
    assert col(Note.body).name == "body"
    n = Note(body="x")
    assert n.body == "x" and n.id is None  # instances keep values
    assert n.model_dump(exclude_unset=True) == {"body": "x"}


def test_subclass_redefining_a_field_gets_no_column_default() -> None:
    class Child(Note, table="children"):
        body: str
        extra: int = 1

    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError: body is required
        Child()
    assert col(Child.body).model is Child
    assert Child.__table__ == "children" and Note.__table__ == "notes"


def test_unbound_model_and_bad_col() -> None:
    class Loose(Model):
        x: int

    with pytest.raises(errors.ConfigError):
        Loose.table_name()
    with pytest.raises(TypeError):
        col("body")


def test_filter_rendering() -> None:
    u = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert col(Note.owner).eq(u).render() == f"owner.eq.{u}"
    assert col(Note.body).eq("a,b").render() == 'body.eq."a,b"'
    assert col(Note.body).in_(["x", "y z", 'q"']).render_value() == '(x,"y z","q\\"")'
    assert (col(Note.id).gt(1) | col(Note.body).is_null()).render() == "or(id.gt.1,body.is.null)"
    assert (~(col(Note.id).gt(1) & col(Note.id).lt(5))).render() == "not.and(id.gt.1,id.lt.5)"
    assert col(Note.body).not_null().render() == "body.not.is.null"
    assert col(Note.at).lt(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).render_value() == "2026-01-01T00:00:00+00:00"


def test_column_validation() -> None:
    assert col(Note.id).validate("5") == 5
    with pytest.raises(errors.ValidationError):
        col(Note.id).validate("five")


def test_cursor_roundtrip_and_garbage() -> None:
    c = encode_cursor([3, "x"])
    assert decode_cursor(c, 2) == [3, "x"]
    for bad in ["%%%", encode_cursor([1]), "e30"]:
        with pytest.raises(errors.ValidationError):
            decode_cursor(bad, 2)


def test_mypy_checks_typed_filters(tmp_path: Path) -> None:
    """``col(Note.body).eq(3)`` is a type error; the right type is fine."""
    from mypy import api

    src = tmp_path / "snippet.py"
    src.write_text(
        "from appkit import Model, col\n"
        "class Note(Model, table='notes'):\n"
        "    id: int | None = None\n"
        "    body: str\n"
        "col(Note.body).eq('x')\n"
        "col(Note.id).in_([1, 2])\n"
        "col(Note.body).eq(3)\n"
    )
    out, _, status = api.run([str(src), "--strict", "--no-incremental", "--follow-imports=silent"])
    assert status == 1
    lines = [line for line in out.splitlines() if "error:" in line]
    assert len(lines) == 1 and "snippet.py:7" in lines[0], out
