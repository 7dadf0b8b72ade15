"""Realtime pieces without a server: value conversion, filters, frames, pgoutput."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appkit.local.realtime.cdc import PgOutputDecoder
from appkit.local.realtime.protocol import FrameError, Serializer
from appkit.local.realtime.values import FilterError, parse_filters, to_json_value


@pytest.mark.parametrize(("typ", "text", "expected"), [
    ("int8", "42", 42),
    ("bool", "t", True),
    ("bool", "f", False),
    ("float8", "1.5", 1.5),
    ("numeric", "10", 10),
    ("jsonb", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("text", "hello", "hello"),
    ("timestamptz", "2024-01-02 03:04:05.123+00", "2024-01-02T03:04:05.123+00:00"),
    ("timestamptz", "2024-01-02 03:04:05+05:30", "2024-01-02T03:04:05+05:30"),
    ("timestamp", "2024-01-02 03:04:05", "2024-01-02T03:04:05"),
    ("_text", '{a,"b c",NULL,"d\\"e"}', ["a", "b c", None, 'd"e']),
    ("_int4", "{{1,2},{3,4}}", [[1, 2], [3, 4]]),
    ("_int4", "{}", []),
    ("uuid", "11111111-1111-1111-1111-111111111111", "11111111-1111-1111-1111-111111111111"),
])
def test_to_json_value(typ: str, text: str, expected: object) -> None:
    assert to_json_value(typ, text) == expected


def test_null_is_none() -> None:
    assert to_json_value("int4", None) is None


@pytest.mark.parametrize(("flt", "record", "typ", "match"), [
    ("n=eq.3", {"n": 3}, "int4", True),
    ("n=eq.3", {"n": 4}, "int4", False),
    ("n=neq.3", {"n": 4}, "int4", True),
    ("n=lt.10", {"n": 9}, "int4", True),
    ("n=lt.10", {"n": 10}, "int4", False),
    ("n=lte.10", {"n": 10}, "int4", True),
    ("n=gt.2", {"n": 10}, "int4", True),  # numeric, not string, comparison
    ("n=gte.2.5", {"n": 2.5}, "numeric", True),
    ("s=in.(a,b)", {"s": "b"}, "text", True),
    ("s=in.(a,b)", {"s": "c"}, "text", False),
    ("s=eq.x", {"s": None}, "text", False),
    ("s=eq.x", {}, "text", False),
    ("b=eq.true", {"b": True}, "bool", True),
    ("t=gt.2024-01-01T00:00:00Z", {"t": "2024-06-01T00:00:00+00:00"}, "timestamptz", True),
    ("s=like.ab%", {"s": "abc"}, "text", True),
    ("s=like.ab_", {"s": "abcd"}, "text", False),
    ("s=ilike.AB%", {"s": "abc"}, "text", True),
    ("s=match.^a.c$", {"s": "abc"}, "text", True),
    ("s=imatch.^A", {"s": "abc"}, "text", True),
    ("s=is.null", {"s": None}, "text", True),
    ("s=is.null", {"s": "x"}, "text", False),
    ("b=is.true", {"b": True}, "bool", True),
    ("s=not.is.null", {"s": "x"}, "text", True),
    ("s=not.eq.x", {"s": "y"}, "text", True),
    ("s=not.eq.x", {"s": None}, "text", False),  # NULL: unknown, never matches
    ("s=not.in.(a,b)", {"s": "c"}, "text", True),
    ("s=isdistinct.x", {"s": None}, "text", True),
    ("s=isdistinct.x", {"s": "x"}, "text", False),
])
def test_filters(flt: str, record: dict[str, object], typ: str, match: bool) -> None:
    (f,) = parse_filters(flt)
    assert f.matches(record, typ) is match


def test_several_filters_are_and() -> None:
    fs = parse_filters("n=gt.1,s=in.(a,b)")
    assert len(fs) == 2
    assert all(f.matches({"n": 2, "s": "a"}, "int4" if f.column == "n" else "text") for f in fs)


@pytest.mark.parametrize("bad", ["n", "n=eq", "n=regex.a", "=eq.1", "n=in.1,2", "n=is.maybe", "s=match.(("])
def test_bad_filters(bad: str) -> None:
    with pytest.raises(FilterError):
        parse_filters(bad)


@given(st.text())
def test_filter_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(FilterError):
        parse_filters(text)


def test_serializers() -> None:
    v1, v2 = Serializer("1.0.0"), Serializer("2.0.0")
    frame = v1.decode(json.dumps({"topic": "realtime:a", "event": "phx_join", "payload": {"x": 1}, "ref": 1,
                                  "join_ref": "1"}))
    assert (frame.topic, frame.event, frame.ref, frame.join_ref) == ("realtime:a", "phx_join", "1", "1")
    assert json.loads(v1.reply("1", "2", "t", "ok", {})) == {
        "topic": "t", "event": "phx_reply", "payload": {"status": "ok", "response": {}}, "ref": "2"}
    assert json.loads(v2.push("t", "broadcast", {"a": 1})) == [None, None, "t", "broadcast", {"a": 1}]
    assert json.loads(v1.push_raw("t", "e", '{"a":1}')) == {"topic": "t", "event": "e", "payload": {"a": 1},
                                                             "ref": None}
    assert json.loads(v2.push_raw("t", "e", '{"a":1}')) == [None, None, "t", "e", {"a": 1}]
    frame2 = v2.decode('["1","3","realtime:b","broadcast",{"k":2}]')
    assert frame2.payload == {"k": 2} and frame2.ref == "3"
    for bad in ("nope", "[1,2]", '{"topic": 1, "event": "x"}'):
        with pytest.raises(FrameError):
            (v2 if bad.startswith("[") else v1).decode(bad)
    with pytest.raises(FrameError):
        Serializer("9.9.9")


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(values: list[str | None]) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        else:
            out += b"t" + struct.pack("!i", len(v.encode())) + v.encode()
    return out


def test_pgoutput_decoder() -> None:
    d = PgOutputDecoder()
    rel = (b"R" + struct.pack("!I", 16384) + _s("public") + _s("items") + b"d" + struct.pack("!h", 2)
           + b"\x01" + _s("id") + struct.pack("!Ii", 20, -1) + b"\x00" + _s("body") + struct.pack("!Ii", 25, -1))
    begin = b"B" + struct.pack("!qqi", 100, 1_000_000, 7)
    ins = b"I" + struct.pack("!I", 16384) + b"N" + _tuple(["1", "hi"])
    upd = b"U" + struct.pack("!I", 16384) + b"N" + _tuple(["1", None])
    dele = b"D" + struct.pack("!I", 16384) + b"K" + _tuple(["1", None])
    commit = b"C" + b"\0" + struct.pack("!qqq", 100, 200, 1_000_000)
    assert d.feed(begin) == (None, [])
    r, _ = d.feed(rel)
    assert r is not None and [c.name for c in r.columns] == ["id", "body"] and r.replident == "d"
    for m in (ins, upd, dele):
        assert d.feed(m) == (None, [])  # nothing before the commit
    _, changes = d.feed(commit)
    assert [c.kind for c in changes] == ["INSERT", "UPDATE", "DELETE"]
    assert changes[0].new == {"id": "1", "body": "hi"} and changes[0].old is None
    assert changes[1].new == {"id": "1", "body": None}
    assert changes[2].old == {"id": "1", "body": None} and changes[2].new is None
    assert changes[0].commit_ts.year == 2000 and changes[0].commit_ts.second == 1
    # pgoutput re-sends a relation message after invalidations: unchanged, it keeps the
    # described relation (nothing to look up again); a changed column list replaces it
    r.rls = True
    assert d.feed(rel) == (None, [])
    assert d.relations[16384] is r
    altered = rel.replace(_s("body"), _s("text"))
    r2, _ = d.feed(altered)
    assert r2 is not None and r2 is not r and [c.name for c in r2.columns] == ["id", "text"]
    assert d.relations[16384] is r2


def test_binary_user_broadcast_push() -> None:
    v2 = Serializer("2.0.0")
    frame = v2.decode_binary(bytes([3, 1, 2, 3, 2, 1]) + b"1" + b"22" + b"t:x" + b"ev" + b'{"a": 1}')
    assert (frame.join_ref, frame.ref, frame.topic, frame.event) == ("1", "22", "t:x", "broadcast")
    assert frame.payload == {"type": "broadcast", "event": "ev", "payload": {"a": 1}}
    for bad in (bytes([3, 9, 9, 9, 9, 1]), bytes([0, 1]), bytes([3, 0, 0, 1, 1, 0]) + b"te\x00"):
        with pytest.raises(FrameError):
            v2.decode_binary(bad)
    with pytest.raises(FrameError):
        Serializer("1.0.0").decode_binary(bytes([3, 0, 0, 0, 0, 1]))
