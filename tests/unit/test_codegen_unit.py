"""``appkit gen models`` rendering from a hand-made catalog: names, keywords, aliases, determinism."""

from __future__ import annotations

import pytest

from appkit.db.codegen import Catalog, Column, PgType, Relation, check_schemas, render
from appkit.errors import ValidationError


def _types() -> dict[int, PgType]:
    return {
        23: PgType(23, "pg_catalog", "int4", "b", "N", 0, 0, False, 0, None),
        25: PgType(25, "pg_catalog", "text", "b", "S", 0, 0, False, 0, None),
        1007: PgType(1007, "pg_catalog", "_int4", "b", "A", 23, 0, False, 0, None),
        9000: PgType(9000, "public", "from", "e", "E", 0, 0, False, 0, ("a", 'b"c')),
        9001: PgType(9001, "public", "Model", "d", "S", 0, 25, True, 0, None),
    }


def _catalog() -> Catalog:
    cols = (
        Column("id", 23, True, True, True, False, None),
        Column("from", 9000, True, False, False, False, "the \"source\" \\ of it"),
        Column("model_config", 9001, False, False, False, False, None),
        Column("2nd", 1007, False, False, False, False, None),
    )
    return Catalog(schemas=("public",), types=_types(), relations=[
        Relation(2, "public", "z-last", "r", None, ("id",), cols),
        Relation(1, "public", "class", "v", "a view", (), (Column("id", 23, False, False, False, False, None),)),
    ])


def test_render_sanitises_names_and_is_deterministic() -> None:
    source = render(_catalog())
    assert source == render(_catalog())
    assert 'class Class(Model, table="class", schema="public"):' in source
    assert 'class ZLast(Model, table="z-last", schema="public"):' in source
    assert source.index("class Class(") < source.index("class ZLast(")
    assert 'From: TypeAlias = Literal["a", "b\\"c"]' in source
    assert "Model2: TypeAlias = str" in source or "PublicModel: TypeAlias = str" in source
    assert '    from_: From = Field(alias="from")' in source
    assert 'model_config_: ' in source and 'alias="model_config"' in source
    assert '    f_2nd: list[int] | None = Field(default=None, alias="2nd")' in source
    assert '    id: int = _server_default()  # identity' in source
    compile(source, "generated.py", "exec")


@pytest.mark.parametrize("bad", [[], ["a b"], ["x;drop"], [""]])
def test_check_schemas_rejects(bad: list[str]) -> None:
    with pytest.raises(ValidationError):
        check_schemas(bad)


def test_check_schemas_dedupes() -> None:
    assert check_schemas(["public", "api", "public"]) == ["public", "api"]
