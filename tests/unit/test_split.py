"""The statement splitter must agree with the Supabase CLI's (what it stores in
schema_migrations.statements) and never split inside quotes, bodies or comments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appkit.db.split import split_statements


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def test_basic_split_trims_semicolons_and_space() -> None:
    assert texts("create table a (id int);\n\n  insert into a values (1) ;\n") == [
        "create table a (id int)",
        "insert into a values (1)",
    ]


def test_semicolons_inside_strings_identifiers_and_comments() -> None:
    sql = (
        "insert into t values ('a;b', 'it''s;');\n"
        'select 1 as "x;y";\n'
        "-- a comment; still a comment\n"
        "select 2;\n"
        "/* block; /* nested; */ still; */ select 3;"
    )
    assert texts(sql) == [
        "insert into t values ('a;b', 'it''s;')",
        'select 1 as "x;y"',
        "-- a comment; still a comment\nselect 2",
        "/* block; /* nested; */ still; */ select 3",
    ]


def test_dollar_quoted_bodies() -> None:
    sql = (
        "create function f() returns void language plpgsql as $$ begin perform 1; perform 2; end $$;\n"
        "do $body$ begin raise notice 'x;'; end $body$;\n"
        "select $1::int;"
    )
    out = texts(sql)
    assert len(out) == 3
    assert out[0].endswith("end $$")
    assert out[1].startswith("do $body$")


def test_begin_atomic_and_parentheses() -> None:
    sql = (
        "create function g() returns int language sql begin atomic select 1; select 2; end;\n"
        "create rule r as on insert to t do also (insert into u values (1); insert into u values (2));\n"
        "select 3"
    )
    out = texts(sql)
    assert len(out) == 3
    assert out[0].endswith("end")
    assert out[2] == "select 3"


def test_line_numbers() -> None:
    sql = "\n\nselect 1;\n-- c\nselect\n  2;"
    stmts = split_statements(sql)
    assert [s.line for s in stmts] == [3, 4]


def test_trailing_comment_is_kept_like_the_cli() -> None:
    assert texts("select 1;\n-- done\n") == ["select 1", "-- done"]


safe_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ 0123456789", min_size=1, max_size=12).filter(
    lambda s: s.strip() != ""
)
literal = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@st.composite
def statement(draw: st.DrawFn) -> str:
    head = draw(safe_words).strip()
    parts = [f"select {head}"]
    for kind in draw(st.lists(st.sampled_from(["quote", "ident", "dollar", "comment", "paren"]), max_size=4)):
        lit = draw(literal)
        if kind == "quote":
            parts.append("'" + lit.replace("'", "''") + "'")
        elif kind == "ident":
            parts.append('"' + lit.replace('"', '""') + '"')
        elif kind == "dollar":
            parts.append("$q$" + lit.replace("$q$", "") + "$q$")
        elif kind == "comment":
            parts.append("/* " + lit.replace("*/", "").replace("/*", "") + " */")
        else:
            parts.append("(" + "'" + lit.replace("'", "''") + "'" + ")")
    return " ".join(parts)


@given(st.lists(statement(), min_size=1, max_size=6))
def test_roundtrip_property(stmts: list[str]) -> None:
    sql = ";\n".join(stmts) + ";"
    assert texts(sql) == [s.strip() for s in stmts]
