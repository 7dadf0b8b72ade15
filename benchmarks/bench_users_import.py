"""Users import benchmark: ``appkit users import`` of 10,000 users with bcrypt hashes (target <= 20 s).

    python benchmarks/bench_users_import.py                 # 10,000 users; API peer on 1,000
    python benchmarks/bench_users_import.py --users 2000 --api-users 200   # quick run

Starts its own local stack in a temp dir. Times the whole CLI command as a user runs it
(process start, file parse and checks, COPY, insert, identities) for a JSON and a CSV file.
Peer measured in the same run: the same import through the auth admin API (one
``create_user(password_hash=...)`` per user, 8 in flight: what firebase-admin-style
one-by-one migration scripts do), reported per user and as a ratio. Then checks that an
imported user signs in with the original password.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import bcrypt
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import start_stack, write_project  # noqa: E402

PASSWORD = "correct-horse-battery-staple-1"


def cli(*args: str, env: dict[str, str] | None = None) -> float:
    import os

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "appkit_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"appkit {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return elapsed


def users(n: int, tag: str, hashed: str) -> list[dict[str, object]]:
    return [{"id": str(uuid.uuid4()), "email": f"bench-{tag}-{i}@example.com", "password_hash": hashed,
             "email_confirmed_at": "2024-01-01T00:00:00+00:00", "user_metadata": {"i": i},
             "app_metadata": {"plan": "free"}} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--api-users", type=int, default=1_000)
    args = parser.parse_args()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    with tempfile.TemporaryDirectory(prefix="bench-users-") as tmp:
        work = Path(tmp)
        write_project(work)
        stack = start_stack(work)
        try:
            results: dict[str, float] = {}
            for fmt in ("json", "csv"):
                tag = uuid.uuid4().hex[:8]
                rows = users(args.users, tag, hashed)
                src = work / f"users.{fmt}"
                if fmt == "json":
                    src.write_text(json.dumps({"users": rows}))
                else:
                    from appkit.users.records import dump, parse

                    src.write_text(dump(parse(json.dumps(rows), "json"), "csv"))
                results[fmt] = cli("users", "import", str(src), "--workdir", str(work))
                r = httpx.post(f"{stack.api_url}/auth/v1/token?grant_type=password",
                               json={"email": f"bench-{tag}-{args.users - 1}@example.com", "password": PASSWORD},
                               headers={"apikey": stack.anon_key}, timeout=30)
                assert r.status_code == 200, r.text
            tag = uuid.uuid4().hex[:8]
            src = work / "api.json"
            src.write_text(json.dumps(users(args.api_users, tag, hashed)))
            api = cli("users", "import", str(src), "--url", stack.api_url, "--service-role-key",
                      stack.service_role_key, "--workdir", str(work), env={"SUPABASE_DB_URL": ""})
            export = cli("users", "export", str(work / "out.json"), "--workdir", str(work))
        finally:
            stack.stop()
    per_db = results["json"] / args.users
    per_api = api / args.api_users
    print(f"users import, {args.users:,} users (JSON): {results['json']:.2f} s "
          f"({args.users / results['json']:,.0f} users/s) target <= 20 s")
    print(f"users import, {args.users:,} users (CSV):  {results['csv']:.2f} s")
    print(f"peer, admin API one by one (8 in flight), {args.api_users:,} users: {api:.2f} s "
          f"({args.api_users / api:,.0f} users/s)")
    print(f"ratio per user, admin API / appkit import: {per_api / per_db:.1f}x")
    print(f"users export of every user (~{2 * args.users + args.api_users:,}): {export:.2f} s")


if __name__ == "__main__":
    main()
