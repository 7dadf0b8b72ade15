"""Hypothesis: any text value survives the SDK's filter rendering (eq, in_, inside or/and)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appkit import AppKit, col
from tests.sdk_support import Note, app, require, sdk_schema, signed_up
from tests.support import StackHandle

__all__ = ["app", "sdk_schema"]
pytestmark = pytest.mark.integration

texts = st.sampled_from(["null", "NULL", "true", "a b", " lead", "trail ", "\xa0", "\u2003x\t"]) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(list(',.:()"\\ %*{}[]&=?#+')),
    min_size=1, max_size=30,
)


@pytest.fixture(scope="module")
def fuzz_notes(stack: StackHandle, sdk_schema: None):  # type: ignore[no-untyped-def]
    require(stack, "rest", "auth")
    client = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)
    yield client.as_user(signed_up(client)).table(Note)
    client.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=texts)
def test_any_text_filters_exactly(fuzz_notes, body: str) -> None:  # type: ignore[no-untyped-def]
    notes = fuzz_notes
    n = notes.insert(Note(body=body))
    try:
        assert [r.id for r in notes.list(col(Note.body).eq(body))] == [n.id]
        if body.lower() != "null":
            # the local REST service reads a quoted "null" inside in.(...) as NULL (reported to its owner)
            assert [r.id for r in notes.list(col(Note.body).in_([body, "never"]))] == [n.id]
        either = col(Note.body).eq(body) | col(Note.id).eq(-1)
        assert [r.id for r in notes.list(either)] == [n.id]
        both = col(Note.body).eq(body) & col(Note.id).eq(n.id)
        assert [r.id for r in notes.list(both)] == [n.id]
        assert [r.id for r in notes.list(~col(Note.body).neq(body))] == [n.id]
    finally:
        notes.delete(n.id)
