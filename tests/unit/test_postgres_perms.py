"""The unprivileged Postgres user must reach the server binaries wherever the venv lives,
e.g. in a 0700 directory made by `mktemp -d` (what .ci/run does)."""

from __future__ import annotations

import stat
from pathlib import Path

from appkit.local.postgres import _ensure_binaries_usable


def test_binaries_in_a_private_directory_become_reachable(tmp_path: Path) -> None:
    private = tmp_path / "venv"
    install = private / "lib" / "pginstall"
    (install / "bin").mkdir(parents=True)
    exe = install / "bin" / "postgres"
    exe.write_text("")
    exe.chmod(0o755)
    private.chmod(0o700)
    _ensure_binaries_usable(install)
    for parent in (install, install.parent, private, tmp_path):
        assert parent.stat().st_mode & stat.S_IXOTH, parent
    assert not private.stat().st_mode & stat.S_IROTH, "only traverse is granted, not listing"
