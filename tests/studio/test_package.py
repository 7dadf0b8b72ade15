"""The studio's packaging: every template, static asset and SQL file ships in the wheel (nothing is fetched
at run time), and ``appkit.studio``'s public surface is what its ``__all__`` says."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import appkit.studio
from tests.support import REPO

STUDIO = REPO / "src" / "appkit" / "studio"


def test_wheel_ships_templates_static_assets_and_sql(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = list(tmp_path.glob("appkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"appkit/studio/{p.relative_to(STUDIO).as_posix()}"
                for sub in ("static", "templates") for p in (STUDIO / sub).rglob("*") if p.is_file()}
    assert "appkit/studio/static/htmx.min.js" in expected and "appkit/studio/templates/base.html" in expected
    assert expected <= names, sorted(expected - names)
    assert "appkit/studio/queries.sql" in names
    assert "appkit_cli/studio.py" in names


def test_public_surface() -> None:
    assert sorted(appkit.studio.__all__) == sorted(
        ["DEFAULT_PORT", "Page", "Studio", "StudioServer", "StudioTarget", "create_app", "csrf_protect",
         "error_page", "redirect", "render", "serve", "studio_of"])
    for name in appkit.studio.__all__:
        assert getattr(appkit.studio, name) is not None


def test_no_asset_comes_from_elsewhere() -> None:
    for template in (STUDIO / "templates").glob("*.html"):
        text = template.read_text()
        for marker in ("http://", "https://", "//cdn", "unpkg", "jsdelivr"):
            for line in text.splitlines():
                if marker in line and ("<script" in line or "<link" in line or "<img" in line):
                    raise AssertionError(f"{template.name} loads an asset from elsewhere: {line.strip()}")
