"""The wheel ships everything the stack needs at run time: SQL, shim extensions, py.typed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO


def test_wheel_contains_sql_extensions_and_typing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = list(tmp_path.glob("appkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    schema = {n for n in names if n.startswith("appkit/local/schema/") and n.endswith(".sql")}
    assert "appkit/local/schema/20_auth.sql" in schema and "appkit/local/schema/30_storage.sql" in schema
    assert "appkit/local/pgshare/extension/uuid-ossp.control" in names
    assert "appkit/local/pgshare/extension/pgcrypto--1.3.sql" in names
    assert "appkit/py.typed" in names
    assert "appkit_cli/main.py" in names
    assert any(n.startswith("appkit/sql/") for n in names)
    assert "appkit/sql/0020_jobs.sql" in names and "appkit/jobs/queries.sql" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "appkit = appkit_cli.main:run" in zipfile.ZipFile(wheel).read(entry).decode()
