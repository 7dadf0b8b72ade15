"""docs/net.md's and docs/vault.md's examples run as written (the local server's address
replaced by a test server's) and do what the pages say."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appkit.local.config import load_config
from tests.httpsink import HttpSink, start_sink
from tests.support import REPO

DOCS = REPO / "docs"


def blocks(page: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


@pytest.fixture(scope="module")
def sink() -> Iterator[HttpSink]:
    s = start_sink()
    try:
        yield s
    finally:
        s.close()


def test_net_page_examples(db: psycopg.Connection[Any], sink: HttpSink) -> None:
    send, read, webhook = (b.replace("http://127.0.0.1:9999", sink.url) for b in blocks("net.md", "sql"))
    db.execute(send)
    sink.wait_for(1, path="/hook")
    sink.wait_for(1, path="/items")
    sink.wait_for(1, path="/items/1")
    db.execute("drop table if exists public.orders")
    try:
        db.execute(webhook)
        [hook] = sink.wait_for(1, path="/orders-hook")
        assert hook.json() == {"type": "INSERT", "table": "orders", "schema": "public",
                               "record": {"id": 1, "status": "new"}, "old_record": None}
        rows = db.execute("select hook_table_id::regclass::text, hook_name from supabase_functions.hooks "
                          "where hook_name = 'orders_webhook'").fetchall()
        assert rows == [("orders", "orders_webhook")]
    finally:
        db.execute("drop table if exists public.orders")
    deadline = time.monotonic() + 15
    while db.execute(read).fetchall()[0][1] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.execute(read).fetchall()[0][1] == 200


def test_vault_page_examples(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    [sql] = blocks("vault.md", "sql")
    db.execute("drop table if exists public.integrations")
    try:
        db.execute(sql)
        assert db.execute("select decrypted_secret, description from vault.decrypted_secrets "
                          "where name = 'stripe_key'").fetchone() == ("sk_test_456", "Stripe test key")
    finally:
        db.execute("drop table if exists public.integrations")
        db.execute("delete from vault.secrets where name = 'stripe_key'")
    [toml] = blocks("vault.md", "toml")
    (tmp_path / "config.toml").write_text(toml)
    config = load_config(tmp_path / "config.toml")
    assert config.db.vault == {"stripe_key": "env(STRIPE_SECRET_KEY)", "webhook_secret": "whsec_local_only"}
