"""Vault's root key file and the ``[db.vault]`` config section (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appkit.errors import ConfigError
from appkit.local.config import load_config
from appkit.local.vault import KEY_BYTES, KEY_FILE, config_secrets, ensure_key


def test_key_is_created_once_private_and_random(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert ensure_key(a) is True
    key = (a / KEY_FILE).read_bytes()
    assert len(key) == KEY_BYTES
    assert (a / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert ensure_key(a) is False  # an existing key is never replaced (it would orphan every secret)
    assert (a / KEY_FILE).read_bytes() == key
    ensure_key(b)
    assert (b / KEY_FILE).read_bytes() != key
    assert sorted(p.name for p in a.iterdir()) == [KEY_FILE]  # no temp file left behind


def test_db_vault_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    monkeypatch.setenv("APPKIT_UNIT_VAULT", "from-env")
    monkeypatch.delenv("APPKIT_UNIT_VAULT_UNSET", raising=False)
    cfg.write_text('[db.vault]\na = "env(APPKIT_UNIT_VAULT)"\nb = "env(APPKIT_UNIT_VAULT_UNSET)"\nc = ""\n')
    vault = load_config(cfg).db.vault
    assert vault == {"a": "from-env", "b": "env(APPKIT_UNIT_VAULT_UNSET)", "c": ""}
    assert config_secrets(vault) == ({"a": "from-env"}, ["b", "c"])
    assert load_config(tmp_path / "missing.toml").db.vault == {}
    cfg.write_text("[db.vault]\nport = 5\n")
    with pytest.raises(ConfigError, match=r"db\.vault\.port: Input should be a valid string"):
        load_config(cfg)
    cfg.write_text('[db]\nvault = "x"\n')
    with pytest.raises(ConfigError, match=r"db\.vault: Input should be a valid dictionary"):
        load_config(cfg)
