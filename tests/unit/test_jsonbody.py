"""The shared JSON body parser turns hostile bodies into BadJson, never another error."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appkit.local.jsonbody import MAX_DEPTH, BadJson, has_nul, loads


@pytest.mark.parametrize("body", [
    b"[" * 100_000, b"{\"a\":" * 100_000, b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    b"\xff\xfe", b'"\\ud800"', b'{"k": ["\\udc00x"]}', b'{"\\ud800": 1}', b"", b"{", b"nan", b"[1,]",
])
def test_hostile_bodies_are_bad_json(body: bytes) -> None:
    with pytest.raises(BadJson):
        loads(body)


def test_nesting_up_to_the_limit_and_brackets_in_strings_are_fine() -> None:
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(deep) is not None
    text = json.dumps({"s": "[" * 10_000 + '\\"{' * 1000})
    assert loads(text.encode())["s"].startswith("[[[")
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"  # a valid pair
    assert loads(b'"\\\\ud800"') == "\\ud800"  # an escaped backslash, not an escape


def test_has_nul() -> None:
    assert has_nul({"a": ["x", "y\x00"]}) and has_nul({"\x00": 1}) and not has_nul({"a": [1, None, "b"]})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_document_round_trips(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(BadJson):
            loads(raw)
        return
    if any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value, ensure_ascii=False)):
        with pytest.raises(BadJson):
            loads(json.dumps(value).encode())
        return
    assert loads(raw) == value


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_bad_json(raw: bytes) -> None:
    with contextlib.suppress(BadJson):
        loads(raw)
