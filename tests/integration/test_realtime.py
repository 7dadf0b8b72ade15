"""Realtime with the official async client: broadcast, presence, postgres changes, RLS,
tokens. Runs against the session stack (tables are uniquely named rt_*)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from realtime import RealtimeSubscribeStates

from tests.realtime_support import Recorder, client, config, user_token, wait_for
from tests.support import StackHandle

pytestmark = pytest.mark.integration


@pytest.fixture()
def table(db: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    """A published table with RLS: owners see their rows; replica identity default."""
    name = f"rt_items_{uuid.uuid4().hex[:8]}"
    t = sql.Identifier(name)
    db.execute(sql.SQL(
        "create table public.{} (id bigint generated always as identity primary key, owner uuid, "
        "n int not null default 0, status text, tags text[], data jsonb, at timestamptz default now())").format(t))
    db.execute(sql.SQL("alter table public.{} enable row level security").format(t))
    db.execute(sql.SQL("create policy own on public.{} for select to authenticated using (owner = auth.uid())")
               .format(t))
    db.execute(sql.SQL("create policy everyone on public.{} for select to anon using (true)").format(t))
    db.execute(sql.SQL("grant select on public.{} to anon, authenticated").format(t))
    db.execute(sql.SQL("alter publication supabase_realtime add table public.{}").format(t))
    yield name
    db.execute(sql.SQL("drop table public.{}").format(t))


@pytest.fixture()
async def rt(stack: StackHandle) -> AsyncIterator[list[Any]]:
    """Collects clients and closes them after the test."""
    clients: list[Any] = []
    yield clients
    for c in clients:
        await c.close()


def insert(db: psycopg.Connection[tuple[object, ...]], table: str, **values: Any) -> None:
    cols = list(values)
    db.execute(sql.SQL("insert into public.{} ({}) values ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols))), list(values.values()))


# -- broadcast ---------------------------------------------------------------------------

async def test_broadcast_self_and_others(stack: StackHandle, rt: list[Any]) -> None:
    topic = f"rt-room-{uuid.uuid4().hex[:6]}"
    a, b = await client(stack), await client(stack)
    rt += [a, b]
    got_a, got_b, got_a_noself = Recorder(), Recorder(), Recorder()
    ch_a = a.channel(topic, config(self_=True))
    ch_a.on_broadcast("msg", got_a)
    await ch_a.subscribe(got_a.state)
    ch_b = b.channel(topic, config())
    ch_b.on_broadcast("*", got_b)
    await ch_b.subscribe(got_b.state)
    assert got_a.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED

    await ch_a.send_broadcast("msg", {"n": 1})
    await wait_for(lambda: len(got_a) == 1 and len(got_b) == 1, what="broadcast to self and peer")
    assert got_b.items[0] == {"type": "broadcast", "event": "msg", "payload": {"n": 1}} or \
        got_b.items[0]["payload"] == {"n": 1}
    assert got_a.items[0]["payload"] == {"n": 1}

    # self=False: the sender does not get its own message; the peer's later one arrives alone
    c = await client(stack)
    rt.append(c)
    ch_c = c.channel(topic, config(self_=False))
    ch_c.on_broadcast("*", got_a_noself)
    await ch_c.subscribe()
    await ch_c.send_broadcast("mine", {"n": 2})
    await wait_for(lambda: len(got_b) == 2, what="peer gets the self=False sender's message")
    await ch_b.send_broadcast("theirs", {"n": 3})
    await wait_for(lambda: len(got_a_noself) >= 1, what="message from the peer")
    assert [m["event"] for m in got_a_noself.items] == ["theirs"]


async def test_broadcast_ack(stack: StackHandle, rt: list[Any]) -> None:
    from realtime.types import RealtimeAcknowledgementStatus

    a = await client(stack)
    rt.append(a)
    ch = a.channel(f"rt-ack-{uuid.uuid4().hex[:6]}", config(ack=True))
    await ch.subscribe()
    acks: list[Any] = []
    push = await ch.push("broadcast", {"type": "broadcast", "event": "e", "payload": {"k": "v"}})
    push.receive(RealtimeAcknowledgementStatus.Ok, lambda r: acks.append(("ok", r)))
    push.receive(RealtimeAcknowledgementStatus.Error, lambda r: acks.append(("error", r)))
    await wait_for(lambda: bool(acks), what="broadcast ack")
    assert acks[0][0] == "ok"

    big = await ch.push("broadcast", {"type": "broadcast", "event": "e", "payload": {"k": "x" * (4 * 1024 * 1024)}})
    big.receive(RealtimeAcknowledgementStatus.Error, lambda r: acks.append(("error", r)))
    await wait_for(lambda: len(acks) == 2, what="payload too large error")
    assert acks[1][0] == "error" and "Payload" in acks[1][1]["reason"]


async def test_http_broadcast(stack: StackHandle, rt: list[Any]) -> None:
    topic = f"rt-http-{uuid.uuid4().hex[:6]}"
    a = await client(stack)
    rt.append(a)
    got = Recorder()
    ch = a.channel(topic, config())
    ch.on_broadcast("*", got)
    await ch.subscribe()
    url = stack.api_url + "/realtime/v1/api/broadcast"
    headers = {"apikey": stack.service_role_key, "Authorization": f"Bearer {stack.service_role_key}"}
    async with httpx.AsyncClient() as http:
        r = await http.post(url, headers=headers,
                            json={"messages": [{"topic": topic, "event": "server", "payload": {"a": 1}}]})
        assert r.status_code == 202
        await wait_for(lambda: len(got) == 1, what="HTTP broadcast")
        assert got.items[0]["event"] == "server" and got.items[0]["payload"] == {"a": 1}

        r = await http.post(url, headers=headers, json={"messages": "nope"})
        assert r.status_code == 422
        r = await http.post(url, headers={"apikey": "garbage"}, json={"messages": []})
        assert r.status_code == 401
        r = await http.post(url, headers=headers, content=b"{not json")
        assert r.status_code == 400

    # the client's own http_send (single-message endpoint)
    await ch.http_send("via-client", {"b": 2})
    await wait_for(lambda: len(got) == 2, what="http_send broadcast")
    assert got.items[1]["event"] == "via-client" and got.items[1]["payload"] == {"b": 2}


# -- presence ------------------------------------------------------------------------------

async def test_presence_join_leave_and_socket_drop(stack: StackHandle, rt: list[Any]) -> None:
    topic = f"rt-presence-{uuid.uuid4().hex[:6]}"
    a, b = await client(stack), await client(stack)
    rt.append(b)
    joins: list[tuple[str, Any]] = []
    leaves: list[tuple[str, Any]] = []
    ch_b = b.channel(topic, config(presence_key="bob", presence=True))
    ch_b.on_presence_join(lambda key, cur, new: joins.append((key, new)))
    ch_b.on_presence_leave(lambda key, cur, left: leaves.append((key, left)))
    await ch_b.subscribe()
    ch_a = a.channel(topic, config(presence_key="alice", presence=True))
    await ch_a.subscribe()
    await ch_a.track({"status": "online"})
    await wait_for(lambda: any(k == "alice" for k, _ in joins), what="alice's join")
    alice = next(new for k, new in joins if k == "alice")
    assert alice[0]["status"] == "online" and "presence_ref" in alice[0]
    assert "alice" in ch_b.presence_state()

    # a late joiner gets the full state
    c = await client(stack)
    rt.append(c)
    synced: list[int] = []
    ch_c = c.channel(topic, config(presence_key="carol", presence=True))
    ch_c.on_presence_sync(lambda: synced.append(1))
    await ch_c.subscribe()
    await wait_for(lambda: "alice" in ch_c.presence_state(), what="presence_state for a late joiner")

    # update: same key, new meta
    await ch_a.track({"status": "away"})
    await wait_for(lambda: [p["status"] for p in ch_b.presence_state().get("alice", [])] == ["away"],
                   what="presence update")

    # the socket drops without untrack: others see the leave
    await a.close()
    await wait_for(lambda: any(k == "alice" for k, _ in leaves), what="leave after socket drop")
    await wait_for(lambda: "alice" not in ch_b.presence_state(), what="alice gone from state")

    # explicit untrack
    await ch_c.track({"status": "here"})
    await wait_for(lambda: "carol" in ch_b.presence_state(), what="carol's join")
    await ch_c.untrack()
    await wait_for(lambda: "carol" not in ch_b.presence_state(), what="carol's untrack")


# -- postgres changes ------------------------------------------------------------------------

async def test_postgres_changes_events(stack: StackHandle, rt: list[Any], table: str,
                                       db: psycopg.Connection[tuple[object, ...]]) -> None:
    a = await client(stack)
    rt.append(a)
    inserts, updates, deletes, every = Recorder(), Recorder(), Recorder(), Recorder()
    ch = a.channel(f"rt-pg-{table}", config())
    ch.on_postgres_changes("INSERT", inserts, table=table, schema="public")
    ch.on_postgres_changes("UPDATE", updates, table=table, schema="public")
    ch.on_postgres_changes("DELETE", deletes, table=table, schema="public")
    ch.on_postgres_changes("*", every, table=table)
    system: list[Any] = []
    ch.on_system(system.append)
    await ch.subscribe(every.state)
    assert every.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
    await wait_for(lambda: bool(system), what="'Subscribed to PostgreSQL'")
    assert system[0].message == "Subscribed to PostgreSQL" and system[0].extension == "postgres_changes"

    insert(db, table, n=1, status="new", tags=["a", "b"], data=psycopg.types.json.Jsonb({"k": [1, 2]}))
    await wait_for(lambda: len(inserts) == 1, what="INSERT")
    ins = inserts.items[0]
    data = ins["data"]
    assert data["type"] == "INSERT" and data["schema"] == "public" and data["table"] == table
    assert data["errors"] is None and "old_record" not in data
    assert data["record"]["n"] == 1 and data["record"]["status"] == "new"
    assert data["record"]["tags"] == ["a", "b"] and data["record"]["data"] == {"k": [1, 2]}
    assert isinstance(data["record"]["id"], int)
    assert data["commit_timestamp"].endswith("Z") and "T" in data["commit_timestamp"]
    assert {"name": "n", "type": "int4"} in data["columns"] and {"name": "id", "type": "int8"} in data["columns"]
    assert "T" in data["record"]["at"]
    assert len(ins["ids"]) == 2  # the INSERT and the * binding
    row_id = data["record"]["id"]

    db.execute(sql.SQL("update public.{} set status = 'done' where id = %s").format(sql.Identifier(table)), [row_id])
    await wait_for(lambda: len(updates) == 1, what="UPDATE")
    upd = updates.items[0]["data"]
    assert upd["record"]["status"] == "done" and upd["old_record"] == {"id": row_id}  # replica identity default

    db.execute(sql.SQL("delete from public.{} where id = %s").format(sql.Identifier(table)), [row_id])
    await wait_for(lambda: len(deletes) == 1, what="DELETE")
    dele = deletes.items[0]["data"]
    assert dele["type"] == "DELETE" and dele["old_record"] == {"id": row_id} and "record" not in dele
    await wait_for(lambda: len(every) == 3, what="* binding sees all three")
    assert [e["data"]["type"] for e in every.items] == ["INSERT", "UPDATE", "DELETE"]

    # replica identity full: the whole old row (RLS on: DELETE old keeps only the key)
    db.execute(sql.SQL("alter table public.{} replica identity full").format(sql.Identifier(table)))
    insert(db, table, n=7, status="x")
    await wait_for(lambda: len(inserts) == 2, what="second INSERT")
    rid = inserts.items[1]["data"]["record"]["id"]
    db.execute(sql.SQL("update public.{} set n = 8 where id = %s").format(sql.Identifier(table)), [rid])
    await wait_for(lambda: len(updates) == 2, what="UPDATE with full identity")
    assert updates.items[1]["data"]["old_record"]["n"] == 7
    assert updates.items[1]["data"]["old_record"]["status"] == "x"


async def test_only_committed_changes_in_order(stack: StackHandle, rt: list[Any], table: str,
                                                db: psycopg.Connection[tuple[object, ...]]) -> None:
    a = await client(stack)
    rt.append(a)
    got = Recorder()
    ch = a.channel(f"rt-order-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    await ch.subscribe()
    with psycopg.connect(stack.db_url) as conn:  # a rolled-back transaction is never delivered
        conn.execute(sql.SQL("insert into public.{} (n) values (-1)").format(sql.Identifier(table)))
        conn.rollback()
    for i in range(30):
        insert(db, table, n=i)
    with db.transaction():
        for i in range(30, 40):
            insert(db, table, n=i)
    await wait_for(lambda: len(got) == 40, what="40 inserts")
    assert [m["data"]["record"]["n"] for m in got.items] == list(range(40))


@pytest.mark.parametrize(("flt", "expected"), [
    ("n=eq.3", [3]),
    ("n=neq.3", [1, 2, 4, 5]),
    ("n=lt.3", [1, 2]),
    ("n=lte.3", [1, 2, 3]),
    ("n=gt.3", [4, 5]),
    ("n=gte.3", [3, 4, 5]),
    ("n=in.(2,4,9)", [2, 4]),
    ("status=eq.s3", [3]),
    ("status=in.(s1,s5)", [1, 5]),
    ("status=not.in.(s1,s5)", [2, 3, 4]),
    ("status=ilike.S2", [2]),
    ("n=gt.1,status=neq.s3", [2, 4, 5]),
])
async def test_postgres_changes_filters(stack: StackHandle, rt: list[Any], table: str, flt: str,
                                        expected: list[int], db: psycopg.Connection[tuple[object, ...]]) -> None:
    a = await client(stack)
    rt.append(a)
    filtered, all_rows = Recorder(), Recorder()
    ch = a.channel(f"rt-filter-{table}", config())
    ch.on_postgres_changes("INSERT", filtered, table=table, schema="public", filter=flt)
    ch.on_postgres_changes("INSERT", all_rows, table=table, schema="public")
    await ch.subscribe(all_rows.state)
    assert all_rows.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
    for n in range(1, 6):
        insert(db, table, n=n, status=f"s{n}")
    # the unfiltered binding rides on the same messages: once it saw the last row, all are in
    await wait_for(lambda: len(all_rows) == 5, what="all rows")
    assert [m["data"]["record"]["n"] for m in filtered.items] == expected


async def test_postgres_changes_bad_filter_reports_error(stack: StackHandle, rt: list[Any], table: str) -> None:
    a = await client(stack)
    rt.append(a)
    states = Recorder()
    system: list[Any] = []
    ch = a.channel(f"rt-badfilter-{table}", config())
    ch.on_postgres_changes("INSERT", Recorder(), table=table, schema="public", filter="n=regex.3")
    ch.on_system(system.append)
    await ch.subscribe(states.state)
    await wait_for(lambda: any(s == RealtimeSubscribeStates.CHANNEL_ERROR for s, _ in states.states),
                   what="channel error for a bad filter")
    err = next(e for s, e in states.states if s == RealtimeSubscribeStates.CHANNEL_ERROR)
    assert "regex" in str(err)


async def test_rls_isolation(stack: StackHandle, rt: list[Any], table: str,
                             db: psycopg.Connection[tuple[object, ...]]) -> None:
    user_a, user_b = str(uuid.uuid4()), str(uuid.uuid4())
    ca = await client(stack, user_token(stack, user_a))
    cb = await client(stack, user_token(stack, user_b))
    anon = await client(stack)
    rt += [ca, cb, anon]
    got_a, got_b, got_anon = Recorder(), Recorder(), Recorder()
    for c, rec in ((ca, got_a), (cb, got_b), (anon, got_anon)):
        ch = c.channel(f"rt-rls-{table}", config())
        ch.on_postgres_changes("*", rec, table=table, schema="public")
        await ch.subscribe()
    for i in range(3):
        insert(db, table, owner=user_b, n=100 + i)
        insert(db, table, owner=user_a, n=i)
    await wait_for(lambda: len(got_a) == 3 and len(got_b) == 3, what="each user's own rows")
    await wait_for(lambda: len(got_anon) == 6, what="anon (policy: all rows) gets all")
    assert [m["data"]["record"]["n"] for m in got_a.items] == [0, 1, 2]
    assert [m["data"]["record"]["n"] for m in got_b.items] == [100, 101, 102]
    assert all(m["data"]["record"]["owner"] == user_a for m in got_a.items)


async def test_changes_survive_the_service_losing_its_pooled_connections(
        stack: StackHandle, rt: list[Any], table: str, db: psycopg.Connection[tuple[object, ...]]) -> None:
    """The RLS checks' connections are killed (an admin, a restart of a pooler): the next
    change still reaches the subscriber -- it is not dropped as "not visible"."""
    user = str(uuid.uuid4())
    c = await client(stack, user_token(stack, user))
    rt.append(c)
    got = Recorder()
    ch = c.channel(f"rt-kill-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    await ch.subscribe()
    await asyncio.sleep(0.3)
    insert(db, table, owner=user, n=1)
    await wait_for(lambda: len(got) == 1, what="the first change")
    killed = db.execute(
        "select count(pg_terminate_backend(pid, 5000)) from pg_stat_activity where datname = current_database()"
        " and pid <> pg_backend_pid() and backend_type = 'client backend'").fetchone()
    assert killed is not None and killed[0] > 0
    insert(db, table, owner=user, n=2)
    await wait_for(lambda: len(got) == 2, what="the change after the connections died")
    assert [m["data"]["record"]["n"] for m in got.items] == [1, 2]


def test_rls_check_waits_until_the_transaction_is_visible(stack: StackHandle, table: str,
                                                          db: psycopg.Connection[tuple[object, ...]]) -> None:
    """A change is decoded as soon as its commit record is flushed, a moment before Postgres
    shows the transaction to new snapshots; the RLS check waits for that moment instead of
    judging the row invisible (it would drop the change). Here the writer's transaction is
    still open while the check starts, and commits 0.3 s later."""
    import threading

    with psycopg.connect(stack.db_url) as writer:
        row = writer.execute(sql.SQL("insert into public.{} (n) values (7) returning id, "
                                     "pg_current_xact_id()::text::bigint & 4294967295").format(sql.Identifier(table))
                             ).fetchone()
        assert row is not None
        row_id, xid = row
        threading.Timer(0.3, writer.commit).start()
        result = db.execute(
            "select realtime.appkit_visible_to(%s::regclass, array['id'], array['bigint']::regtype[], %s,"
            " %s::jsonb, %s)", (f"public.{table}", [str(row_id)], '[{"role": "anon"}]', xid)).fetchone()
    # answered after the commit: without the wait the uncommitted row is invisible -> [False]
    assert result == ([True],)


async def test_no_select_privilege_no_changes(stack: StackHandle, rt: list[Any], table: str,
                                              db: psycopg.Connection[tuple[object, ...]]) -> None:
    db.execute(sql.SQL("revoke select on public.{} from anon").format(sql.Identifier(table)))
    anon, admin = await client(stack), await client(stack, stack.service_role_key)
    rt += [anon, admin]
    got_anon, got_admin = Recorder(), Recorder()
    for c, rec in ((anon, got_anon), (admin, got_admin)):
        ch = c.channel(f"rt-priv-{table}", config())
        ch.on_postgres_changes("INSERT", rec, table=table, schema="public")
        await ch.subscribe()
    insert(db, table, n=1)
    await wait_for(lambda: len(got_admin) == 1, what="service_role sees the row")
    insert(db, table, n=2)
    await wait_for(lambda: len(got_admin) == 2, what="second row")
    assert len(got_anon) == 0


# -- tokens ------------------------------------------------------------------------------

async def test_expired_token_is_rejected_at_join(stack: StackHandle, rt: list[Any]) -> None:
    c = await client(stack, user_token(stack, ttl=-10))
    rt.append(c)
    states = Recorder()
    ch = c.channel(f"rt-exp-{uuid.uuid4().hex[:6]}", config())
    await ch.subscribe(states.state)
    status, err = states.states[-1]
    assert status == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "Token has expired" in str(err)


async def test_token_role_must_be_an_api_role(stack: StackHandle, rt: list[Any]) -> None:
    """A validly signed token naming a role outside anon/authenticated/service_role
    (e.g. the superuser) is refused, as PostgREST refuses it."""
    c = await client(stack, user_token(stack, role="postgres"))
    rt.append(c)
    states = Recorder()
    await c.channel(f"rt-role-{uuid.uuid4().hex[:6]}", config()).subscribe(states.state)
    status, err = states.states[-1]
    assert status == RealtimeSubscribeStates.CHANNEL_ERROR and "role 'postgres' is not allowed" in str(err)


async def test_token_refresh_on_open_socket(stack: StackHandle, rt: list[Any], table: str,
                                            db: psycopg.Connection[tuple[object, ...]]) -> None:
    uid = str(uuid.uuid4())
    c = await client(stack, user_token(stack, uid, ttl=3))
    rt.append(c)
    got, states = Recorder(), Recorder()
    ch = c.channel(f"rt-refresh-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    await ch.subscribe(states.state)
    await c.set_auth(user_token(stack, uid, ttl=3600))  # refreshed before the first one expires
    await asyncio.sleep(max(0.0, 3.5))  # let the first token's expiry pass
    insert(db, table, owner=uid, n=42)
    await wait_for(lambda: len(got) == 1, what="delivery after refresh")
    assert all(s == RealtimeSubscribeStates.SUBSCRIBED for s, _ in states.states)

    # a token that expires without refresh closes the channel with Supabase's message
    c2 = await client(stack, user_token(stack, uid, ttl=2))
    rt.append(c2)
    states2 = Recorder()
    ch2 = c2.channel(f"rt-expire-{table}", config())
    await ch2.subscribe(states2.state)
    await wait_for(lambda: any(s == RealtimeSubscribeStates.CHANNEL_ERROR for s, _ in states2.states),
                   timeout=15, what="channel error at expiry")
    err = next(e for s, e in states2.states if s == RealtimeSubscribeStates.CHANNEL_ERROR)
    assert "Token has expired" in str(err)

    # a bad token pushed mid-connection closes the channel too
    c3 = await client(stack, user_token(stack, uid))
    rt.append(c3)
    states3 = Recorder()
    ch3 = c3.channel(f"rt-badtok-{table}", config())
    await ch3.subscribe(states3.state)
    await c3.set_auth("not.a.jwt")
    await wait_for(lambda: any(s == RealtimeSubscribeStates.CHANNEL_ERROR for s, _ in states3.states),
                   what="channel error for a malformed token")


# -- private channels ---------------------------------------------------------------------

async def test_private_channels_follow_rls(stack: StackHandle, rt: list[Any],
                                           db: psycopg.Connection[tuple[object, ...]]) -> None:
    tag = uuid.uuid4().hex[:6]
    policy_read, policy_write = f"rt_read_{tag}", f"rt_write_{tag}"
    db.execute(sql.SQL(
        "create policy {} on realtime.messages for select to authenticated "
        "using (realtime.topic() = 'rt-private-{}-' || auth.uid()::text)").format(
            sql.Identifier(policy_read), sql.SQL(tag)))
    db.execute(sql.SQL(
        "create policy {} on realtime.messages for insert to authenticated "
        "with check (realtime.topic() = 'rt-private-{}-' || auth.uid()::text)").format(
            sql.Identifier(policy_write), sql.SQL(tag)))
    try:
        user_a, user_b = str(uuid.uuid4()), str(uuid.uuid4())
        own = f"rt-private-{tag}-{user_a}"
        ca = await client(stack, user_token(stack, user_a))
        cb = await client(stack, user_token(stack, user_b))
        rt += [ca, cb]
        got_a = Recorder()
        ch_a = ca.channel(own, config(private=True, self_=True))
        ch_a.on_broadcast("*", got_a)
        await ch_a.subscribe(got_a.state)
        assert got_a.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED

        states_b = Recorder()
        ch_b = cb.channel(own, config(private=True))
        await ch_b.subscribe(states_b.state)
        status, err = states_b.states[-1]
        assert status == RealtimeSubscribeStates.CHANNEL_ERROR
        assert "You do not have permissions to read from this Channel topic" in str(err)

        # the public channel of the same name is a different topic
        got_pub = Recorder()
        ch_pub = cb.channel(f"pub-{own}", config())
        ch_pub.on_broadcast("*", got_pub)
        await ch_pub.subscribe()

        await ch_a.send_broadcast("hello", {"x": 1})
        await wait_for(lambda: len(got_a) == 1, what="own private broadcast")

        # database-originated broadcast: realtime.send into the private topic
        db.execute("select realtime.send(%s::jsonb, 'from-db', %s, true)", ['{"y": 2}', own])
        await wait_for(lambda: len(got_a) == 2, what="realtime.send delivery")
        assert got_a.items[1]["event"] == "from-db" and got_a.items[1]["payload"] == {"y": 2}
        # a rolled-back send is never delivered; the next one is
        with psycopg.connect(stack.db_url) as conn:
            conn.execute("select realtime.send('{\"z\": 0}'::jsonb, 'rolled-back', %s, true)", [own])
            conn.rollback()
        db.execute("select realtime.send('{\"z\": 3}'::jsonb, 'after', %s, true)", [own])
        await wait_for(lambda: len(got_a) == 3, what="send after rollback")
        assert got_a.items[2]["event"] == "after"
        assert len(got_pub) == 0

        # replay (private channels): the stored realtime.send messages, oldest first
        replayed = Recorder()
        ca2 = await client(stack, user_token(stack, user_a))
        rt.append(ca2)
        cfg = config(private=True)
        cfg["config"]["broadcast"]["replay"] = {"since": 0, "limit": 5}
        ch_replay = ca2.channel(own, cfg)
        ch_replay.on_broadcast("*", replayed)
        await ch_replay.subscribe(replayed.state)
        assert replayed.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
        await wait_for(lambda: len(replayed) == 2, what="replayed messages")
        assert [m["event"] for m in replayed.items] == ["from-db", "after"]
        assert all(m["meta"]["replayed"] is True for m in replayed.items)

        # HTTP broadcast to a private topic: authorized by the caller's INSERT policy
        url = stack.api_url + "/realtime/v1/api/broadcast"
        async with httpx.AsyncClient() as http:
            for who in (user_b, user_a):  # B may not write to A's topic; A may
                r = await http.post(url, headers={"apikey": stack.anon_key,
                                                  "Authorization": f"Bearer {user_token(stack, who)}"},
                                    json={"messages": [{"topic": own, "event": f"http-{who}", "payload": {},
                                                        "private": True}]})
                assert r.status_code == 202
        await wait_for(lambda: len(got_a) == 4, what="private HTTP broadcast")
        assert got_a.items[3]["event"] == f"http-{user_a}"

        # presence on a private channel: the INSERT policy allows the track
        await ch_a.track({"online": True})
        await wait_for(lambda: len(ch_a.presence_state()) == 1, what="own presence on a private channel")
    finally:
        db.execute(sql.SQL("drop policy {} on realtime.messages").format(sql.Identifier(policy_read)))
        db.execute(sql.SQL("drop policy {} on realtime.messages").format(sql.Identifier(policy_write)))


async def test_broadcast_changes_trigger(stack: StackHandle, rt: list[Any], table: str,
                                         db: psycopg.Connection[tuple[object, ...]]) -> None:
    """realtime.broadcast_changes from a trigger, to a public topic."""
    fn = f"{table}_bc"
    db.execute(sql.SQL(
        "create function public.{}() returns trigger language plpgsql as $$ begin "
        "perform realtime.broadcast_changes('rt-bc-' || TG_TABLE_NAME, TG_OP, TG_OP, TG_TABLE_NAME, "
        "TG_TABLE_SCHEMA, NEW, OLD); return null; end $$").format(sql.Identifier(fn)))
    db.execute(sql.SQL("create trigger bc after insert on public.{} for each row execute function public.{}()")
               .format(sql.Identifier(table), sql.Identifier(fn)))
    try:
        db.execute("create policy rt_bc_read on realtime.messages for select to anon using "
                   "(realtime.topic() like 'rt-bc-%%')")
        c = await client(stack)
        rt.append(c)
        got = Recorder()
        ch = c.channel(f"rt-bc-{table}", config(private=True))
        ch.on_broadcast("INSERT", got)
        await ch.subscribe(got.state)
        assert got.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
        insert(db, table, n=5)
        await wait_for(lambda: len(got) == 1, what="broadcast_changes delivery")
        payload = got.items[0]["payload"]
        assert payload["operation"] == "INSERT" and payload["record"]["n"] == 5 and payload["table"] == table
    finally:
        db.execute("drop policy if exists rt_bc_read on realtime.messages")
        db.execute(sql.SQL("drop function public.{}() cascade").format(sql.Identifier(fn)))


async def test_unknown_topic_and_bad_frames_do_not_break_the_socket(stack: StackHandle) -> None:
    import json

    import websockets

    url = stack.api_url.replace("http", "ws") + f"/realtime/v1/websocket?apikey={stack.anon_key}&vsn=1.0.0"
    async with websockets.connect(url) as ws:
        await ws.send("not json")
        await ws.send(json.dumps({"topic": "realtime:x", "event": "broadcast", "payload": {}, "ref": "1"}))
        reply = json.loads(await ws.recv())
        assert reply["event"] == "phx_reply" and reply["payload"]["status"] == "error"
        await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "2"}))
        reply = json.loads(await ws.recv())
        assert reply == {"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}},
                         "ref": "2"}
    # v2 serializer (supabase-js): arrays
    url2 = url.replace("vsn=1.0.0", "vsn=2.0.0")
    async with websockets.connect(url2) as ws:
        await ws.send(json.dumps(["1", "1", "realtime:v2", "phx_join",
                                  {"config": {"broadcast": {"self": True}, "presence": {"enabled": False}}}]))
        reply = json.loads(await ws.recv())
        assert reply[:4] == ["1", "1", "realtime:v2", "phx_reply"] and reply[4]["status"] == "ok"
        # supabase-js sends broadcasts as binary "user broadcast push" frames (kind 3)
        topic, event, body = b"realtime:v2", b"shout", json.dumps({"v": 2}).encode()
        await ws.send(bytes([3, 1, 1, len(topic), len(event), 1]) + b"1" + b"2" + topic + event + body)
        msg = json.loads(await ws.recv())
        assert msg == [None, None, "realtime:v2", "broadcast", {"type": "broadcast", "event": "shout",
                                                                "payload": {"v": 2}}]
    # no or bad apikey: the handshake is refused
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url.replace(stack.anon_key, "bad")):
            pass


async def test_through_the_supabase_async_client(stack: StackHandle, table: str,
                                                 db: psycopg.Connection[tuple[object, ...]]) -> None:
    from supabase import acreate_client

    sb = await acreate_client(stack.api_url, stack.anon_key)
    got = Recorder()
    ch = sb.channel(f"rt-sb-{table}")
    ch.on_postgres_changes("INSERT", got, table=table, schema="public")
    ch.on_broadcast("ping", got)
    await ch.subscribe(got.state)
    try:
        assert got.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
        insert(db, table, n=11)  # anon's policy lets it see every row
        await wait_for(lambda: len(got) == 1, what="change through supabase.AsyncClient")
        assert got.items[0]["data"]["record"]["n"] == 11
    finally:
        await sb.remove_all_channels()


async def test_select_columns(stack: StackHandle, rt: list[Any], table: str,
                              db: psycopg.Connection[tuple[object, ...]]) -> None:
    a = await client(stack)
    rt.append(a)
    got = Recorder()
    ch = a.channel(f"rt-select-{table}", config())
    ch.on_postgres_changes("INSERT", got, table=table, schema="public", select=["id", "n"])
    await ch.subscribe(got.state)
    assert got.states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED
    insert(db, table, n=3, status="hidden")
    await wait_for(lambda: len(got) == 1, what="projected change")
    data = got.items[0]["data"]
    assert set(data["record"]) == {"id", "n"} and [c["name"] for c in data["columns"]] == ["id", "n"]


async def test_replay_is_refused_on_public_channels(stack: StackHandle, rt: list[Any]) -> None:
    c = await client(stack)
    rt.append(c)
    states = Recorder()
    cfg = config()
    cfg["config"]["broadcast"]["replay"] = {"since": 0}
    await c.channel(f"rt-replay-{uuid.uuid4().hex[:6]}", cfg).subscribe(states.state)
    status, err = states.states[-1]
    assert status == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "Replay is not allowed for public channels" in str(err)
