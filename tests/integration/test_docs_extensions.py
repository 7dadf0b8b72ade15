"""The runnable examples of docs/cron.md and docs/extensions.md run as written, against a stack
of their own (they install extensions the session stack's other tests do not expect)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import run_cli, start_stack, write_project

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_examples_run(tmp_path: Path) -> None:
    write_project(tmp_path)
    h = start_stack(tmp_path)
    try:
        outputs = []
        for page in ("cron.md", "extensions.md"):
            blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
            assert blocks, page
            for block in blocks:
                r = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                                   timeout=120)
                assert r.returncode == 0, f"{page}: {r.stderr[-2000:]}"
                outputs.append(r.stdout)
    finally:
        h.stop()
        run_cli("stop", "--workdir", str(tmp_path))
    assert "'succeeded', '1 row'" in outputs[0]
    assert "({'alg': 'HS256', 'typ': 'JWT'}, {'sub': '42'}, True)" in outputs[1]
    assert "plv8 is not available" in outputs[1]
