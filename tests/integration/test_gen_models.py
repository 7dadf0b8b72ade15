"""``appkit gen models``: the generated module imports, round-trips rows and RPC calls through the
SDK against the stack, passes ``mypy --strict``, is deterministic, and ``--check`` catches drift."""

from __future__ import annotations

import decimal
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pydantic
import pytest

from appkit import AppKit, col, errors
from appkit.db.codegen import generate_models, read_catalog, render
from tests.support import StackHandle, free_port, run_cli

pytestmark = pytest.mark.integration

SEED = (Path(__file__).parent / "data" / "gen_models_seed.sql").read_text()
TEARDOWN = """
drop view if exists public.gen_item_titles;
drop function if exists public.gen_add(int, int), public.gen_items_by_mood(public.gen_mood), public.gen_stats(),
  public.gen_touch(bigint), public.gen_echo(jsonb), public.gen_ids(int[]), public.gen_over(int), public.gen_over(text),
  public.gen_trigger();
drop table if exists public.gen_tags, public.gen_pairs, public.gen_items;
drop domain if exists public.gen_email, public.gen_positive;
drop type if exists public.gen_mood;
notify pgrst, 'reload schema';
"""


@pytest.fixture(scope="module")
def seeded(stack: StackHandle) -> Iterator[str]:
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute(TEARDOWN.encode())
        conn.execute(SEED.encode())
        conn.execute("notify pgrst, 'reload schema'")
    try:
        yield stack.db_url
    finally:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            conn.execute(TEARDOWN.encode())


@pytest.fixture(scope="module")
def generated(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "models.py"
    proc = run_cli("gen", "models", "--db-url", seeded, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def load(path: Path) -> ModuleType:
    name = f"gen_models_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def admin(stack: StackHandle) -> Iterator[AppKit]:
    app = AppKit(url=stack.api_url, anon_key=stack.anon_key, service_role_key=stack.service_role_key)
    try:
        yield app.admin
    finally:
        app.close()


def test_types_of_the_generated_models(generated: Path) -> None:
    m = load(generated)
    fields = m.GenItems.model_fields
    ann = {name: str(info.annotation) for name, info in fields.items()}
    assert m.GenItems.__table__ == "gen_items" and m.GenItems.__schema__ == "public"
    assert ann["title"] == "<class 'str'>" and fields["title"].is_required()
    assert "Literal['happy', 'sad', 'it\\'s \"complicated\"']" in ann["mood"] and not fields["mood"].is_required()
    assert ann["moods"].startswith("list[typing.Literal[")
    assert ann["tags"] == "list[str] | None"
    assert ann["price"] == "decimal.Decimal | None" and ann["contact"] == "str | None"
    assert ann["sku"] == "<class 'uuid.UUID'>" and ann["created_at"] == "<class 'datetime.datetime'>"
    assert ann["born"] == "datetime.date | None" and ann["at_time"] == "datetime.time | None"
    assert "JsonValue" in ann["attrs"] and ann["qty"] == "<class 'int'>" and ann["done"] == "<class 'bool'>"
    # identity and generated columns are optional on insert, required columns are not
    assert not fields["id"].is_required() and not fields["title_len"].is_required()
    assert fields["class_"].alias == "class" and fields["Weird_Name"].alias == "Weird Name"
    assert fields["model_name_"].alias == "model_name"
    assert m.GenTags.__primary_key__ == "code" and m.GenPairs.__doc__.endswith("(composite primary key: a, b)")
    assert set(m.GenItemTitles.model_fields) == {"id", "title", "mood"}
    assert all(not f.is_required() for f in m.GenItemTitles.model_fields.values())  # view columns: nullable
    doc = m.Rpc.__doc__ or ""
    assert "public.gen_over (overloaded)" in doc and "public.gen_trigger (returns trigger)" in doc


def test_round_trip_through_the_sdk(generated: Path, admin: AppKit) -> None:
    m = load(generated)
    items = admin.table(m.GenItems)
    row = items.insert(m.GenItems(title="hello", moods=["sad"], price=decimal.Decimal("9.50"), attrs={"a": [1]},
                                  **{"class": "c1", "Weird Name": "w"}))
    assert row.id > 0 and row.mood == "happy" and row.title_len == 5 and row.qty == 1 and row.done is False
    assert row.class_ == "c1" and row.Weird_Name == "w" and row.attrs == {"a": [1]}
    assert isinstance(row.sku, uuid.UUID) and row.price == decimal.Decimal("9.50")
    assert items.get(row.id) == row
    assert row in items.list(col(m.GenItems.mood).eq("happy"))
    tags = admin.table(m.GenTags)
    tag = tags.insert(m.GenTags(code=f"t-{row.id}", item_id=row.id))
    assert tags.get(tag.code).item_id == row.id
    assert any(t.id == row.id for t in admin.table(m.GenItemTitles).list())
    with pytest.raises(errors.ValidationError):  # the enum's values are checked before any request
        items.update(row.id, mood="angry")
    with pytest.raises(pydantic.ValidationError):
        m.GenItems(title="x", mood="angry")
    rpc = m.Rpc(admin)
    assert rpc.gen_add(a=2) == 3 and rpc.gen_add(a=2, b=5) == 7
    assert row.id in [r.id for r in rpc.gen_items_by_mood(m="happy")]
    [stats] = rpc.gen_stats()
    assert stats.n >= 1 and stats.top == "hello"
    assert rpc.gen_touch(item=row.id) is None
    assert rpc.gen_echo(payload={"k": [1, "two"]}) == {"k": [1, "two"]}
    assert rpc.gen_ids(ids=[3, 1]) == [3, 1]


async def test_async_rpc(generated: Path, stack: StackHandle) -> None:
    from appkit import AsyncAppKit

    m = load(generated)
    async with AsyncAppKit(url=stack.api_url, anon_key=stack.anon_key,
                           service_role_key=stack.service_role_key) as app:
        assert await m.AsyncRpc(app.admin).gen_add(a=40, b=2) == 42


def test_mypy_strict_passes_on_the_generated_module(generated: Path, tmp_path: Path) -> None:
    user_code = tmp_path / "use_models.py"
    user_code.write_text(
        "from appkit import AppKit\n"
        f"from {generated.stem} import GenItems, Rpc\n\n\n"
        "def use(app: AppKit) -> int:\n"
        "    row = app.table(GenItems).insert(GenItems(title='t'))\n"
        "    total: int = Rpc(app).gen_add(a=row.id)\n"
        "    return total + row.qty\n"
    )
    bad_code = tmp_path / "misuse.py"
    bad_code.write_text(
        f"from {generated.stem} import GenItems, Rpc\n"
        "from appkit import AppKit\n\n\n"
        "def misuse(app: AppKit) -> str:\n"
        "    return Rpc(app).gen_add(a='x')\n"
    )
    env_path = f"{generated.parent}"
    base = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache")]
    ok = subprocess.run([*base, str(generated), str(user_code)], capture_output=True, text=True, timeout=600,
                        env={**os.environ, "MYPYPATH": env_path})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([*base, str(bad_code)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MYPYPATH": env_path})
    assert bad.returncode == 1 and "incompatible type" in bad.stdout and "Incompatible return" in bad.stdout


def test_output_is_deterministic_and_check_catches_drift(seeded: str, generated: Path, tmp_path: Path) -> None:
    assert generate_models(seeded) == generated.read_text()
    assert render(read_catalog(seeded, ["public"])) == generated.read_text()
    fresh = run_cli("gen", "models", "--db-url", seeded, "-o", str(generated), "--check")
    assert fresh.returncode == 0, fresh.stderr
    stale = tmp_path / "stale.py"
    stale.write_text(generated.read_text().replace("class GenTags", "class GenTagz"))
    before = stale.read_text()
    proc = run_cli("gen", "models", "--db-url", seeded, "-o", str(stale), "--check")
    assert proc.returncode == 1 and "out of date" in proc.stderr and proc.stderr.count("\n") == 1
    assert stale.read_text() == before  # --check writes nothing
    missing = run_cli("gen", "models", "--db-url", seeded, "-o", str(tmp_path / "none.py"), "--check")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # a schema change makes the file stale
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("alter table public.gen_tags add column extra int")
    try:
        proc = run_cli("gen", "models", "--db-url", seeded, "-o", str(generated), "--check")
        assert proc.returncode == 1 and "out of date" in proc.stderr
    finally:
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute("alter table public.gen_tags drop column extra")


def test_stdout_and_several_schemas(seeded: str) -> None:
    proc = run_cli("gen", "models", "--db-url", seeded, "--schema", "public", "--schema", "storage")
    assert proc.returncode == 0, proc.stderr
    assert "class GenItems(Model" in proc.stdout and "class StorageBuckets(Model" in proc.stdout
    assert 'table="buckets", schema="storage"' in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--schema", "no such"], "invalid schema name"),
        (["--schema", "nope_missing"], "does not exist"),
        (["--check"], "--check needs --output"),
        (["-o", "/nonexistent-dir/x.py"], "is not a directory"),
    ],
)
def test_bad_input(seeded: str, args: list[str], fragment: str) -> None:
    proc = run_cli("gen", "models", "--db-url", seeded, *args)
    assert proc.returncode == 1 and proc.stdout == ""
    assert fragment in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_unreachable_database(tmp_path: Path) -> None:
    out = tmp_path / "m.py"
    proc = run_cli("gen", "models", "--db-url", f"postgresql://postgres@127.0.0.1:{free_port()}/x", "-o", str(out))
    assert proc.returncode == 1 and "cannot connect to the database" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists()


