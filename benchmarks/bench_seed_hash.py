"""Seed-file password hashes: ``crypt(pw, gen_salt('bf'))`` in the embedded server's pgcrypto shim.

    python benchmarks/bench_seed_hash.py [--rows 200]

Measures, in one run on this machine: inserting N seed users whose password is hashed in
SQL by the shim (PBKDF2-SHA256, 4096 iterations, in PL/pgSQL), per user; a single
``crypt(pw, hash)`` check in SQL; and, as the baseline, real bcrypt at Supabase Auth's cost
10 (Python's C ``bcrypt``, one core) — the price the same seed would pay with real
pgcrypto. Also the auth service's own check of a seed hash (hashlib). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bcrypt
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appkit.local.auth.passwords import check_seed_hash  # noqa: E402
from appkit.local.base_schema import EXTENSIONS_DIR, apply_base_schema  # noqa: E402
from appkit.local.postgres import EmbeddedPostgres  # noqa: E402
from tests.support import free_port  # noqa: E402


def per_call(fn: object, n: int) -> float:
    """Median seconds per call over ``n`` calls."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata", free_port(), extension_dir=EXTENSIONS_DIR)
        pg.init()
        pg.start()
        try:
            apply_base_schema(pg.url)
            with psycopg.connect(pg.url, autocommit=True) as conn:
                t = time.perf_counter()
                conn.execute(
                    "insert into auth.users (id, aud, role, email, encrypted_password) "
                    "select gen_random_uuid(), 'authenticated', 'authenticated', 'seed' || i || '@example.com', "
                    "crypt('seed-password', gen_salt('bf')) from generate_series(1, %s) i", (args.rows,))
                seed = (time.perf_counter() - t) / args.rows
                row = conn.execute("select encrypted_password from auth.users limit 1").fetchone()
                assert row is not None
                stored = str(row[0])
                check_sql = per_call(lambda: conn.execute("select crypt('seed-password', %s) = %s",
                                                          (stored, stored)).fetchone(), 50)
        finally:
            pg.stop()
    salt = bcrypt.gensalt(10)
    bcrypt_hash = per_call(lambda: bcrypt.hashpw(b"seed-password", salt), 20)
    service_check = per_call(lambda: check_seed_hash("seed-password", stored), 200)
    pbkdf2_c = per_call(lambda: hashlib.pbkdf2_hmac("sha256", b"seed-password", b"s" * 16, 4096), 200)
    print(f"| measurement (median per call, {args.rows} seed users) | time | vs bcrypt cost 10 |")
    print("|---|---|---|")
    print(f"| seed insert with crypt(pw, gen_salt('bf')) (shim, PL/pgSQL), per user | {seed * 1e3:.1f} ms "
          f"| {seed / bcrypt_hash:.2f}x |")
    print(f"| SQL check crypt(pw, hash) = hash | {check_sql * 1e3:.1f} ms | {check_sql / bcrypt_hash:.2f}x |")
    print(f"| auth service check of a seed hash (hashlib) | {service_check * 1e3:.2f} ms "
          f"| {service_check / bcrypt_hash:.3f}x |")
    print(f"| baseline: bcrypt.hashpw cost 10 (C) | {bcrypt_hash * 1e3:.1f} ms | 1.00x |")
    print(f"| reference: PBKDF2-SHA256 4096 in C (hashlib) | {pbkdf2_c * 1e3:.2f} ms | {pbkdf2_c / bcrypt_hash:.3f}x |")


if __name__ == "__main__":
    main()
