from __future__ import annotations

from pathlib import Path

import pytest

from appkit.errors import ConfigError
from appkit.local.config import DEFAULT_JWT_SECRET, load_config, parse_size


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_missing_file_gives_supabase_cli_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope.toml")
    assert (cfg.api.port, cfg.db.port) == (54321, 54322)
    assert cfg.auth.jwt_secret == DEFAULT_JWT_SECRET
    assert cfg.api.schemas == ["public", "graphql_public"]
    assert cfg.storage.file_size_limit == 50 * 1024**2


def test_values_env_and_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", "x" * 40)
    cfg = load_config(write(tmp_path, """
project_id = "demo"
[api]
port = 6000
[auth]
jwt_secret = "env(MY_SECRET)"
[storage]
file_size_limit = "1GiB"
[storage.buckets.images]
public = true
file_size_limit = "5MB"
allowed_mime_types = ["image/*"]
[edge_runtime]
enabled = true
"""))
    assert cfg.api.port == 6000
    assert cfg.auth.jwt_secret == "x" * 40
    assert cfg.storage.file_size_limit == 1024**3
    assert cfg.storage.buckets["images"].file_size_limit == 5_000_000
    assert cfg.storage.buckets["images"].allowed_mime_types == ["image/*"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[api\nport = 1", "invalid TOML"),
        ("[api]\nport = 'abc'", "api.port"),
        ("[api]\nport = 70000", "api.port"),
        ("[db]\nport = -1", "db.port"),
        ("[auth]\njwt_secret = 'short'", "at least 32 characters"),
        ("[auth]\njwt_secret = 'env(APPKIT_SURELY_UNSET_VAR)'", "APPKIT_SURELY_UNSET_VAR is not set"),
        ("[storage]\nfile_size_limit = 'lots'", "invalid size"),
        ("[api]\nschemas = 'public'", "api.schemas"),
    ],
)
def test_malformed_config_is_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    msg = str(info.value)
    assert fragment in msg
    assert "config.toml" in msg
    assert "\n" not in msg


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 3"):
        load_config(write(tmp_path, "[api]\nport = 1\nport = = 2\n"))


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b"\xff\xfe[api]")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(p)


@pytest.mark.parametrize(("value", "expected"), [(10, 10), ("10", 10), ("1KiB", 1024), ("1.5MB", 1_500_000)])
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected
