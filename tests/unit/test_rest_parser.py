"""PostgREST query-string grammar: select, filters, logic trees, order, Prefer, Range."""

from __future__ import annotations

import pytest

from appkit.local.rest.builder import ident, pg_array_literal
from appkit.local.rest.errors import RestError
from appkit.local.rest.headers import parse_prefer, parse_range
from appkit.local.rest.names import parse_field, split_path
from appkit.local.rest.parser import Filter, Logic, parse_list, parse_logic, parse_operation, parse_order, query_pairs
from appkit.local.rest.select import SelectEmbed, SelectField, SelectStar, parse_select


def test_select_fields_aliases_casts_json() -> None:
    items = parse_select("id,name:title,price::text,lang:meta->>lang,meta->a->0")
    assert isinstance(items[0], SelectField) and items[0].output_name == "id"
    assert isinstance(items[1], SelectField) and (items[1].alias, items[1].field.name) == ("name", "title")
    assert isinstance(items[2], SelectField) and items[2].cast == "text"
    assert isinstance(items[3], SelectField) and items[3].field.json_path == [("->>", "lang")]
    assert isinstance(items[4], SelectField) and items[4].output_name == "0"
    assert items[4].field.json_path == [("->", "a"), ("->", "0")]


def test_select_embeds_hints_inner_spread() -> None:
    items = parse_select("*,author:users!author_id!inner(name,org:orgs(*)),...tags!left(label)")
    assert isinstance(items[0], SelectStar)
    emb = items[1]
    assert isinstance(emb, SelectEmbed)
    assert (emb.alias, emb.relation, emb.hint, emb.join) == ("author", "users", "author_id", "inner")
    inner = emb.items[1]
    assert isinstance(inner, SelectEmbed) and inner.output_name == "org"
    spread = items[2]
    assert isinstance(spread, SelectEmbed) and spread.spread and spread.join == "left"


def test_select_quoted_identifiers() -> None:
    items = parse_select('"my col","a\\"b":"x,y"')
    assert isinstance(items[0], SelectField) and items[0].field.name == "my col"
    assert isinstance(items[1], SelectField) and items[1].alias == 'a"b' and items[1].field.name == "x,y"


@pytest.mark.parametrize("bad", ["id,", "id)", "a(b", "id::text;drop", "x!", '"open', "a:b:c", "id.x"])
def test_select_errors(bad: str) -> None:
    with pytest.raises(RestError) as exc:
        parse_select(bad)
    assert exc.value.status == 400


def test_aggregates_parse_as_postgrest_12() -> None:
    # whether they may run is pgrst.db_aggregates_enabled's business (PGRST123 when off)
    items = parse_select("category,total:amount.sum()::int,count(),id.max()")
    assert [(getattr(i, "aggregate", None), i.output_name) for i in items] == [  # type: ignore[union-attr]
        (None, "category"), ("sum", "total"), ("count", "count"), ("max", "max")]
    assert items[1].cast == "int"  # type: ignore[union-attr]
    for bad in ("id.median()", "id.sum(x)", "count(", "id.sum()::text;drop"):
        with pytest.raises(RestError):
            parse_select(bad)


def test_operations() -> None:
    f = parse_operation(parse_field("age"), "not.gte.18", "filter")
    assert (f.op, f.value, f.negate) == ("gte", "18", True)
    f = parse_operation(parse_field("id"), 'in.(1,"a,b",  c )', "filter")
    assert f.value == ["1", "a,b", "c"]
    f = parse_operation(parse_field("x"), "eq(any).{a,b}", "filter")
    assert (f.quant, f.value) == ("any", ["a", "b"])
    f = parse_operation(parse_field("doc"), "fts(english).cat & dog", "filter")
    assert (f.config, f.value) == ("english", "cat & dog")
    f = parse_operation(parse_field("x"), "is.NULL", "filter")
    assert f.value == "null"
    f = parse_operation(parse_field("x"), "eq.a.b.c", "filter")
    assert f.value == "a.b.c"


@pytest.mark.parametrize("bad", ["eq", "zz.1", "in.1,2", "is.maybe", "eq(foo).1", "fts(a)(b).x", "in.(1,\"2)"])
def test_operation_errors(bad: str) -> None:
    with pytest.raises(RestError) as exc:
        parse_operation(parse_field("x"), bad, "filter")
    assert exc.value.code == "PGRST100"


def test_logic_trees() -> None:
    tree = parse_logic("or", '(a.eq.1,and(b.gt.2,c.not.is.null),not.or(d.eq."x,y",e.in.(1,2)))', False)
    assert isinstance(tree, Logic) and tree.op == "or" and len(tree.children) == 3
    and_ = tree.children[1]
    assert isinstance(and_, Logic) and and_.op == "and"
    c = and_.children[1]
    assert isinstance(c, Filter) and c.negate and c.op == "is"
    nor = tree.children[2]
    assert isinstance(nor, Logic) and nor.negate
    d = nor.children[0]
    assert isinstance(d, Filter) and d.value == "x,y"
    e = nor.children[1]
    assert isinstance(e, Filter) and e.value == ["1", "2"]


@pytest.mark.parametrize("bad", ["a.eq.1", "(a.eq.1", "(a.eq.1))", "(,)", "(a.eq.1,)", "(or(a.eq.1)"])
def test_logic_errors(bad: str) -> None:
    with pytest.raises(RestError):
        parse_logic("or", bad, False)


def test_order() -> None:
    terms = parse_order("a.desc.nullslast,b,author(name).asc,data->>k.desc")
    assert (terms[0].desc, terms[0].nulls) == (True, "last")
    assert (terms[1].desc, terms[1].nulls) == (False, None)
    assert (terms[2].relation, terms[2].field.name) == ("author", "name")
    assert terms[3].field.json_path == [("->>", "k")] and terms[3].desc
    with pytest.raises(RestError):
        parse_order("a.sideways")


def test_prefer_and_range() -> None:
    p = parse_prefer(["return=representation, count=exact", "resolution=merge-duplicates,missing=default",
                      "tx=rollback,handling=strict,max-affected=5,bogus"])
    assert (p.return_, p.count, p.resolution, p.missing, p.tx, p.handling, p.max_affected) == (
        "representation", "exact", "merge-duplicates", "default", "rollback", "strict", 5)
    assert p.invalid == ["bogus"]
    assert parse_range("0-9") == (0, 9)
    assert parse_range("items=5-") == (5, None)
    assert parse_range("nonsense") is None
    with pytest.raises(RestError) as exc:
        parse_range("9-0")
    assert exc.value.status == 416


def test_query_pairs_split_path_lists() -> None:
    assert query_pairs(b"a=1&b=x%2Cy&a=2&c+d=e+f") == [("a", "1"), ("b", "x,y"), ("a", "2"), ("c d", "e f")]
    with pytest.raises(RestError):
        query_pairs(b"a=%ff")
    assert split_path("books.authors.name") == (["books", "authors"], "name")
    assert split_path('"a.b".c') == (['"a.b"'], "c")
    assert parse_list('("a\\"b",c)', "x") == ['a"b', "c"]


def test_identifier_and_array_quoting() -> None:
    assert ident('we"ird%') == '"we""ird%%"'
    assert pg_array_literal(["a", 'b"c', "NULL", "d,e"]) == '{"a","b\\"c",NULL,"d,e"}'


def test_fastpath_placeholder_conversion() -> None:
    from appkit.local.rest.fastpath import _convert, _params

    stmt = _convert('select "a%%(p1)s", %(p1)s, %(p2)s, %(p1)s, \'100%%\'')
    assert stmt.sql == b'select "a%(p1)s", $1, $2, $1, \'100%\''
    assert stmt.keys == ["p1", "p2"]
    assert _params(stmt, {"p1": "x", "p2": 5}) == [b"x", b"5"]
    assert _params(stmt, {"p1": None, "p2": "y"}) == [None, b"y"]
    assert _params(stmt, {"p1": 1.5, "p2": "y"}) is None  # not handled: psycopg takes it
    assert _params(stmt, {"p1": "a\x00b", "p2": "y"}) is None
