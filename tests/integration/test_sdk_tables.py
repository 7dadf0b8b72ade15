"""Typed tables through the SDK against the local stack: CRUD, filters, pages, bulk, RLS, errors."""

from __future__ import annotations

import uuid

import pytest

from appkit import AppKit, col, errors
from tests.sdk_support import Item, Note, app, make_async_app, require, sdk_schema, signed_up
from tests.support import StackHandle

__all__ = ["app", "sdk_schema"]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _rest(stack: StackHandle, sdk_schema: None) -> None:
    require(stack, "rest", "auth")


def test_crud_roundtrip_fills_server_defaults(app: AppKit) -> None:
    session = signed_up(app)
    notes = app.as_user(session).table(Note)
    n = notes.insert(Note(body="hi"))
    assert n.id is not None
    assert str(n.owner) == session.user.id  # default auth.uid() filled by the server
    assert n.rank == 0
    assert notes.get(n.id) == n
    changed = notes.update(n.id, body="changed", rank=3)
    assert (changed.body, changed.rank) == ("changed", 3)
    assert notes.list(col(Note.id).eq(n.id)) == [changed]
    deleted = notes.delete(n.id)
    assert deleted.id == n.id
    with pytest.raises(errors.NotFound):
        notes.get(n.id)
    assert notes.list(col(Note.id).eq(n.id)) == []


def test_two_users_are_isolated_by_rls(app: AppKit) -> None:
    alice, bob = signed_up(app), signed_up(app)
    a_notes = app.as_user(alice).table(Note)
    b_notes = app.as_user(bob).table(Note)
    secret = a_notes.insert(Note(body="alice only"))
    assert secret.id is not None
    with pytest.raises(errors.NotFound):
        b_notes.get(secret.id)
    assert b_notes.list(col(Note.id).eq(secret.id)) == []
    with pytest.raises(errors.NotFound):
        b_notes.update(secret.id, body="bob was here")
    with pytest.raises(errors.NotFound):
        b_notes.delete(secret.id)
    assert b_notes.delete_where(col(Note.id).eq(secret.id)) == 0
    # bob cannot plant a row owned by alice (RLS with check)
    with pytest.raises(errors.PermissionDenied) as exc:
        b_notes.insert(Note(body="forged", owner=uuid.UUID(alice.user.id)))
    assert exc.value.code == "42501"
    # anon sees nothing (no policy for anon)
    with pytest.raises(errors.NotFound):
        app.table(Note).get(secret.id)
    assert a_notes.get(secret.id).body == "alice only"
    # the service role sees everything
    assert app.admin.table(Note).get(secret.id).body == "alice only"


def test_filters_order_columns_and_limits(app: AppKit) -> None:
    notes = app.as_user(signed_up(app)).table(Note)
    for i, body in enumerate(["apple", "banana", "cherry", "a, b (c)", "Apricot"]):
        notes.insert(Note(body=body, rank=i, tag=None if i % 2 else f"t{i}"))
    bodies = lambda rows: [r.body for r in rows]  # noqa: E731
    assert bodies(notes.list(col(Note.body).eq("a, b (c)"))) == ["a, b (c)"]
    assert bodies(notes.list(col(Note.rank).gte(3), order_by=col(Note.rank))) == ["a, b (c)", "Apricot"]
    assert bodies(notes.list(col(Note.body).in_(["apple", "cherry", "nope"]), order_by=col(Note.body))) == [
        "apple", "cherry"]
    assert bodies(notes.list(col(Note.body).like("ap%"))) == ["apple"]
    assert sorted(bodies(notes.list(col(Note.body).ilike("ap%")))) == ["Apricot", "apple"]
    assert bodies(notes.list(col(Note.tag).is_null(), order_by=col(Note.rank))) == ["banana", "a, b (c)"]
    assert len(notes.list(col(Note.tag).not_null())) == 3
    either = col(Note.rank).eq(0) | col(Note.body).eq("a, b (c)")
    assert bodies(notes.list(either, order_by=col(Note.rank).desc())) == ["a, b (c)", "apple"]
    assert bodies(notes.list(~col(Note.rank).lt(4))) == ["Apricot"]
    both = col(Note.rank).gt(0) & col(Note.rank).lt(3)
    assert bodies(notes.list(both, order_by=col(Note.rank))) == ["banana", "cherry"]
    assert bodies(notes.list(order_by=col(Note.rank), limit=2, offset=1)) == ["banana", "cherry"]
    partial = notes.list(col(Note.rank).eq(1), columns=[col(Note.id), col(Note.body)])
    assert [p.body for p in partial] == ["banana"]
    assert partial[0].model_fields_set == {"id", "body"}
    assert notes.count(col(Note.rank).gt(1)) == 3
    assert notes.find(col(Note.body).eq("zzz")) is None
    assert notes.list(col(Note.body).eq("zzz")) == []


def test_keyset_pages_are_stable_under_inserts(app: AppKit) -> None:
    notes = app.as_user(signed_up(app)).table(Note)
    for i in range(7):
        notes.insert(Note(body=f"n{i}", rank=i % 3))
    seen: list[int] = []
    page = notes.page(limit=3)
    assert len(page.items) == 3 and page.has_more
    seen += [n.id for n in page.items if n.id is not None]
    notes.insert(Note(body="late", rank=0))  # lands after the cursor: must not shift pages
    while page.next_cursor:
        page = notes.page(limit=3, after=page.next_cursor)
        seen += [n.id for n in page.items if n.id is not None]
    assert len(seen) == len(set(seen)) == 8
    assert seen == sorted(seen)
    # ordered by a non-unique column (rank desc), ties broken by the primary key
    ranked: list[tuple[int, int]] = []
    cursor = None
    while True:
        p = notes.page(limit=2, after=cursor, order_by=col(Note.rank).desc())
        ranked += [(n.rank, n.id) for n in p.items if n.id is not None]
        cursor = p.next_cursor
        if cursor is None:
            break
    assert len(ranked) == 8 and len(set(ranked)) == 8
    assert [r for r, _ in ranked] == sorted((r for r, _ in ranked), reverse=True)
    with pytest.raises(errors.ValidationError):
        notes.page(after="not-a-cursor!")


def test_upsert_and_upsert_many_in_chunks(app: AppKit) -> None:
    items = app.admin.table(Item)
    prefix = uuid.uuid4().hex[:8]
    rows = [Item(sku=f"{prefix}-{i}", qty=i) for i in range(1234)]
    assert items.upsert_many(rows, chunk_size=500) == 1234
    assert items.count(col(Item.sku).like(f"{prefix}-%")) == 1234
    # again with changes: updates, not duplicates
    assert items.upsert_many(({"sku": f"{prefix}-{i}", "qty": 7} for i in range(1234)), chunk_size=300) == 1234
    assert items.count(col(Item.sku).like(f"{prefix}-%"), col(Item.qty).eq(7)) == 1234
    one = items.upsert(Item(sku=f"{prefix}-0", qty=1, label="x"))
    assert (one.qty, one.label) == (1, "x")
    assert items.get(f"{prefix}-0").label == "x"
    # a bad chunk fails as a whole and nothing of it is written
    bad = [Item(sku=f"{prefix}-bad-{i}", qty=1) for i in range(5)] + [{"sku": f"{prefix}-bad-x", "qty": -1}]
    with pytest.raises(errors.ValidationError) as exc:
        items.upsert_many(bad, chunk_size=100)
    assert exc.value.code == "23514"
    assert items.count(col(Item.sku).like(f"{prefix}-bad-%")) == 0
    with pytest.raises(errors.ValidationError):
        items.upsert_many(rows, chunk_size=0)


def test_insert_many_and_bulk_update_delete(app: AppKit) -> None:
    notes = app.as_user(signed_up(app)).table(Note)
    created = notes.insert_many([Note(body=f"m{i}") for i in range(5)], chunk_size=2)
    assert len(created) == 5 and all(n.id for n in created)
    updated = notes.update_where(col(Note.body).in_(["m0", "m1"]), values={"rank": 9})
    assert sorted(n.body for n in updated) == ["m0", "m1"]
    assert notes.delete_where(col(Note.rank).eq(9)) == 2
    assert notes.count() == 3
    with pytest.raises(errors.ValidationError):
        notes.delete_where()


def test_errors_are_typed_and_keep_server_details(app: AppKit) -> None:
    notes = app.as_user(signed_up(app)).table(Note)
    notes.insert(Note(body="x", tag="dup"))
    with pytest.raises(errors.Conflict) as conflict:
        notes.insert(Note(body="y", tag="dup"))
    assert conflict.value.code == "23505"
    assert conflict.value.message
    with pytest.raises(errors.ValidationError) as invalid:
        notes.insert({"body": None})  # type: ignore[dict-item]
    assert invalid.value.code in ("invalid_value", "23502")
    with pytest.raises(errors.ValidationError):
        notes.update(1, nonexistent="x")
    with pytest.raises(errors.ValidationError):
        notes.update(1, rank="not a number")
    with pytest.raises(errors.ValidationError):
        notes.get("not-an-int")

    from appkit import Model

    class Missing(Model, table="sdk_no_such_table"):
        id: int

    with pytest.raises(errors.NotFound):
        app.admin.table(Missing).list()


def test_raw_builder_escape_hatch_and_rpc(app: AppKit) -> None:
    notes = app.as_user(signed_up(app)).table(Note)
    notes.insert(Note(body="raw-1", rank=5))
    builder = notes.raw().select("*").eq("body", "raw-1")
    rows = notes.execute(builder)
    assert [r.body for r in rows] == ["raw-1"]
    with pytest.raises(errors.AppKitError):
        notes.execute(notes.raw().select("no_such_column"))
    assert app.rpc("sdk_add", {"a": 2, "b": 3}) == 5


async def test_async_client_same_surface(stack: StackHandle) -> None:
    async with make_async_app(stack) as app:
        session = await app.auth.sign_up(email=f"async-{uuid.uuid4().hex[:8]}@example.com",
                                         password="correct-horse-battery-staple-1")
        notes = app.as_user(session).table(Note)
        n = await notes.insert(Note(body="async"))
        assert n.id is not None
        assert (await notes.get(n.id)).body == "async"
        assert [x.body for x in await notes.list(col(Note.id).eq(n.id))] == ["async"]
        assert (await notes.update(n.id, body="b")).body == "b"
        page = await notes.page(limit=10)
        assert [x.id for x in page.items] == [n.id]
        await notes.delete(n.id)
        with pytest.raises(errors.NotFound):
            await notes.get(n.id)
