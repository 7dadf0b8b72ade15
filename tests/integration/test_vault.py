"""Supabase Vault on the local stack through real SQL: a secret's round trip, Vault's errors,
who may read what (a privilege matrix as on Supabase), the key outside the database and out of
dumps and logs, and ``[db.vault]`` secrets created at start before the seed runs."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appkit.local.postgres import pg_install_dir
from appkit.local.vault import KEY_FILE, config_secrets
from tests.support import StackHandle, start_stack, write_project


def test_secret_round_trip_and_update(db: psycopg.Connection[Any]) -> None:
    sid = db.execute("select vault.create_secret('s3kr3t_k3y', 'rt_name', 'the foo key')").fetchone()[0]  # type: ignore[index]
    stored = db.execute("select secret, nonce, key_id from vault.secrets where id = %s", (sid,)).fetchone()
    assert stored is not None and "s3kr3t" not in stored[0]
    assert len(base64.b64decode(stored[0])) == 16 + len("s3kr3t_k3y")  # tag + ciphertext
    assert len(stored[1]) == 16
    row = db.execute("select decrypted_secret, description from vault.decrypted_secrets where name = 'rt_name'").fetchone()
    assert row == ("s3kr3t_k3y", "the foo key")
    created = db.execute("select updated_at from vault.secrets where id = %s", (sid,)).fetchone()
    db.execute("select vault.update_secret(%s, new_name := 'rt_new', new_secret := 'n3w', "
               "new_description := 'the bar key')", (sid,))
    row = db.execute("select name, decrypted_secret, description, updated_at > %s from vault.decrypted_secrets "
                     "where id = %s", (created[0] if created else None, sid)).fetchone()
    assert row == ("rt_new", "n3w", "the bar key", True)
    db.execute("select vault.update_secret(%s, new_description := 'only this')", (sid,))
    assert db.execute("select name, decrypted_secret, description from vault.decrypted_secrets where id = %s",
                      (sid,)).fetchone() == ("rt_new", "n3w", "only this")
    # an empty secret, and the positional (secret, name) form seeds use; unicode survives
    db.execute("select vault.create_secret('', 'rt_empty')")
    db.execute("select vault.create_secret('ключ 🔑' || repeat('x', 100), 'rt_long')")
    assert db.execute("select decrypted_secret from vault.decrypted_secrets where name in ('rt_empty', 'rt_long') "
                      "order by name").fetchall() == [("",), ("ключ 🔑" + "x" * 100,)]
    # the same plain text under two secrets gives two ciphertexts (a nonce per secret)
    a = db.execute("select vault.create_secret('same')").fetchone()[0]  # type: ignore[index]
    b = db.execute("select vault.create_secret('same')").fetchone()[0]  # type: ignore[index]
    assert db.execute("select count(distinct secret) from vault.secrets where id in (%s, %s)", (a, b)).fetchone() == (2,)
    # a foreign key to vault.secrets, as apps declare
    db.execute("create table public.vault_fk (secret_id uuid references vault.secrets(id))")
    try:
        db.execute("insert into public.vault_fk values (%s)", (sid,))
    finally:
        db.execute("drop table public.vault_fk")
    db.execute("delete from vault.secrets where name like 'rt\\_%%' or id in (%s, %s)", (a, b))


def test_vault_errors_leave_nothing_half_done(db: psycopg.Connection[Any]) -> None:
    db.execute("select vault.create_secret('one', 'err_dup')")
    before = db.execute("select count(*) from vault.secrets").fetchone()
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("select vault.create_secret('two', 'err_dup')")
    with pytest.raises(psycopg.errors.NotNullViolation, match='null value in column "secret"'):
        db.execute("select vault.create_secret(null, 'err_null')")
    assert db.execute("select count(*) from vault.secrets").fetchone() == before
    # a secret that does not exist: no row to read, an update that changes nothing (as Vault)
    assert db.execute("select decrypted_secret from vault.decrypted_secrets where name = 'err_nope'").fetchall() == []
    db.execute("select vault.update_secret(gen_random_uuid(), 'x', 'y')")
    assert db.execute("select count(*) from vault.secrets").fetchone() == before
    with pytest.raises(psycopg.errors.UniqueViolation):  # renaming onto a taken name
        sid = db.execute("select vault.create_secret('three', 'err_other')").fetchone()[0]  # type: ignore[index]
        db.execute("select vault.update_secret(%s, 'changed', 'err_dup')", (sid,))
    assert db.execute("select decrypted_secret from vault.decrypted_secrets where name = 'err_other'").fetchone() \
        == ("three",)
    # a ciphertext altered on disk, or moved to another secret's row, is refused, not mis-decrypted
    db.execute("update vault.secrets set secret = (select secret from vault.secrets where name = 'err_dup') "
               "where name = 'err_other'")
    with pytest.raises(psycopg.errors.DataException, match="pgsodium_crypto_aead_det_decrypt_by_id: invalid message"):
        db.execute("select decrypted_secret from vault.decrypted_secrets where name = 'err_other'")
    db.execute("delete from vault.secrets where name like 'err\\_%'")


#: (operation) -> actors allowed, as Supabase's image grants them (postgres is the superuser here)
ACTORS = ("anon", "authenticated", "service_role", "postgres")
VAULT_MATRIX: dict[str, set[str]] = {
    "select vault.secrets": {"service_role", "postgres"},
    "select vault.decrypted_secrets": {"service_role", "postgres"},
    "insert vault.secrets": {"postgres"},
    "update vault.secrets": {"postgres"},
    "delete vault.secrets": {"service_role", "postgres"},
    "execute vault.create_secret": {"service_role", "postgres"},
    "execute vault.update_secret": {"service_role", "postgres"},
    "execute vault._crypto_aead_det_decrypt": {"service_role", "postgres"},
    "execute vault._root_key": {"postgres"},
    "read the key file": {"postgres"},
}
_SQL = {
    "select vault.secrets": "select count(*) from vault.secrets",
    "select vault.decrypted_secrets": "select decrypted_secret from vault.decrypted_secrets where name = 'mx'",
    "insert vault.secrets": "insert into vault.secrets (secret) values ('x')",
    "update vault.secrets": "update vault.secrets set description = 'y' where name = 'mx'",
    "delete vault.secrets": "delete from vault.secrets where name = 'mx'",
    "execute vault.create_secret": "select vault.create_secret('v', 'mx2')",
    "execute vault.update_secret": "select vault.update_secret((select id from vault.secrets where name = 'mx'), 'z')",
    "execute vault._crypto_aead_det_decrypt": "select vault._crypto_aead_det_decrypt(decode(secret, 'base64'), "
                                              "convert_to(id::text, 'utf8'), 0, 'pgsodium', nonce) "
                                              "from vault.secrets where name = 'mx'",
    "execute vault._root_key": "select vault._root_key()",
    "read the key file": f"select pg_read_binary_file('{KEY_FILE}')",
}


def test_privilege_matrix(stack: StackHandle, db: psycopg.Connection[Any]) -> None:
    db.execute("select vault.create_secret('matrix', 'mx')")
    rows: list[tuple[str, str, bool, str]] = []
    try:
        with psycopg.connect(stack.db_url) as conn:
            for op, allowed in VAULT_MATRIX.items():
                for actor in ACTORS:
                    conn.execute(f"set local role {actor}")
                    outcome = "allowed"
                    try:
                        with conn.transaction():
                            conn.execute(_SQL[op])
                    except psycopg.errors.InsufficientPrivilege as exc:
                        outcome = f"denied: {exc.diag.message_primary}"
                    except psycopg.Error as exc:
                        outcome = f"other error: {exc.diag.message_primary}"
                    rows.append((op, actor, actor in allowed, outcome))
                    conn.rollback()
    finally:
        db.execute("delete from vault.secrets where name in ('mx', 'mx2')")
    bad = [r for r in rows if r[2] != (r[3] == "allowed")]
    table = "\n".join(f"{op:40} {actor:14} expected={'allow' if exp else 'deny':5}  {got}" for op, actor, exp, got in rows)
    assert not bad, f"Vault privileges differ from Supabase's:\n{table}"


def test_key_lives_outside_the_database_and_never_in_a_dump(stack: StackHandle, db: psycopg.Connection[Any]) -> None:
    assert stack.workdir is not None
    key_path = stack.workdir / "supabase" / ".appkit" / "pgdata" / KEY_FILE
    key = key_path.read_bytes()
    assert len(key) == 32
    assert key_path.stat().st_mode & 0o777 == 0o600
    db.execute("select vault.create_secret('dump-me-not-plain', 'dump_check')")
    try:
        dump = subprocess.run([str(pg_install_dir() / "bin" / "pg_dump"), "--dbname", stack.db_url],
                              check=True, capture_output=True, timeout=120).stdout
    finally:
        db.execute("delete from vault.secrets where name = 'dump_check'")
    assert b"vault.secrets" in dump  # Vault's table data is dumped (pg_extension_config_dump) ...
    assert b"dump-me-not-plain" not in dump  # ... encrypted
    for form in (key, key.hex().encode(), base64.b64encode(key)):
        assert form not in dump
    log = (stack.workdir / "stack-test.log").read_bytes()
    assert key.hex().encode() not in log and base64.b64encode(key) not in log


def test_config_secrets_follow_the_supabase_cli() -> None:
    keep, skipped = config_secrets({"a": "1", "empty": "", "unset": "env(NOT_SET_ANYWHERE)"})
    assert keep == {"a": "1"} and skipped == ["empty", "unset"]


def test_db_vault_secrets_exist_before_the_seed_and_survive_restarts(tmp_path: Path) -> None:
    workdir = tmp_path / "vaultcfg"
    workdir.mkdir()
    write_project(workdir, extra_config=(
        '\n[db.vault]\nservice_key = "env(APPKIT_TEST_VAULT_VALUE)"\nliteral = "plain-value"\n'
        'unset = "env(APPKIT_TEST_VAULT_UNSET)"\n'))
    (workdir / "supabase" / "seed.sql").write_text(
        "create table public.seen_secret as select decrypted_secret from vault.decrypted_secrets "
        "where name = 'service_key';\n")
    env = {"APPKIT_TEST_VAULT_VALUE": "first-value"}
    stack = start_stack(workdir, env=env)
    try:
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            assert conn.execute("select decrypted_secret from public.seen_secret").fetchone() == ("first-value",)
            rows = conn.execute("select name, decrypted_secret from vault.decrypted_secrets order by name").fetchall()
            assert rows == [("literal", "plain-value"), ("service_key", "first-value")]
            first_id = conn.execute("select id from vault.secrets where name = 'service_key'").fetchone()
        stack.stop()
        stack = start_stack(workdir, env={"APPKIT_TEST_VAULT_VALUE": "second-value"})
        with psycopg.connect(stack.db_url, autocommit=True) as conn:
            assert conn.execute("select id, decrypted_secret from vault.decrypted_secrets where name = 'service_key'"
                                ).fetchone() == (first_id[0] if first_id else None, "second-value")
            assert conn.execute("select count(*) from vault.secrets").fetchone() == (2,)
        log = (workdir / "stack-test.log").read_text()
        assert "[db.vault] unset" in log and "first-value" not in log and "second-value" not in log
    finally:
        stack.stop()


def test_without_the_key_file_vault_refuses_with_a_clear_error(stack: StackHandle, db: psycopg.Connection[Any]) -> None:
    # what an external database (no key file in its data directory) answers
    assert stack.workdir is not None
    key_path = stack.workdir / "supabase" / ".appkit" / "pgdata" / KEY_FILE
    sid = db.execute("select vault.create_secret('kept', 'nokey_kept')").fetchone()[0]  # type: ignore[index]
    before = db.execute("select count(*) from vault.secrets").fetchone()
    hidden = key_path.with_name(KEY_FILE + ".hidden")
    key_path.rename(hidden)
    try:
        for sql in ("select vault.create_secret('x', 'nokey_new')",
                    "select decrypted_secret from vault.decrypted_secrets where name = 'nokey_kept'",
                    f"select vault.update_secret('{sid}', 'changed')"):
            with pytest.raises(psycopg.errors.UndefinedFile, match="vault: the encryption key is not available"):
                db.execute(sql)
    finally:
        hidden.rename(key_path)
    assert db.execute("select count(*) from vault.secrets").fetchone() == before
    assert db.execute("select decrypted_secret from vault.decrypted_secrets where id = %s", (sid,)).fetchone() == ("kept",)
    db.execute("delete from vault.secrets where id = %s", (sid,))
