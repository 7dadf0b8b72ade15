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


# --- the Supabase CLI's own template, env(...) and unknown keys, as the CLI treats them ---

CLI_TEMPLATE = Path(__file__).parent.parent / "fixtures" / "supabase_cli_2.117.0_config.toml"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_API_KEY", "S3_HOST", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY", "SUPABASE_ENV",
                 "SUPABASE_AUTH_SMS_TWILIO_AUTH_TOKEN", "SUPABASE_AUTH_EXTERNAL_APPLE_SECRET", "APPKIT_T_SITE",
                 "APPKIT_T_PORT", "APPKIT_T_SECRET", "APPKIT_T_A", "APPKIT_T_B"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def project(tmp_path: Path, config: str) -> Path:
    (tmp_path / "supabase").mkdir()
    p = tmp_path / "supabase" / "config.toml"
    p.write_text(config)
    return p


def test_supabase_init_template_loads_without_environment(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    # `supabase init`'s config.toml has env(OPENAI_API_KEY), env(S3_HOST), the Twilio token and the
    # Apple secret: none of them is used by appkit, so none stops it and none is worth a warning
    cfg = load_config(project(tmp_path, CLI_TEMPLATE.read_text()))
    assert cfg.warnings == []
    assert (cfg.api.port, cfg.db.port, cfg.auth.jwt_secret) == (54321, 54322, DEFAULT_JWT_SECRET)
    assert cfg.studio.model_extra is not None and cfg.studio.model_extra["openai_api_key"] == "env(OPENAI_API_KEY)"
    assert (cfg.studio.enabled, cfg.studio.port) == (True, 54323)


def test_unset_env_in_a_used_text_setting_warns_and_keeps_it(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APPKIT_T_B", "")  # empty counts as unset, as in the Supabase CLI
    cfg = load_config(project(tmp_path, """
[auth]
site_url = "env(APPKIT_T_SITE)"
additional_redirect_urls = ["http://a", "env(APPKIT_T_B)"]
"""))
    assert cfg.auth.site_url == "env(APPKIT_T_SITE)"
    assert cfg.auth.additional_redirect_urls == ["http://a", "env(APPKIT_T_B)"]
    assert [w.split(": ", 1)[1] for w in cfg.warnings] == [
        "environment variable is unset: APPKIT_T_SITE (auth.site_url is used as written)",
        "environment variable is unset: APPKIT_T_B (auth.additional_redirect_urls[1] is used as written)",
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[api]\nport = 'env(APPKIT_T_PORT)'", "api.port: environment variable APPKIT_T_PORT is not set"),
        ("[auth]\njwt_secret = 'env(APPKIT_T_SECRET)'", "auth.jwt_secret: environment variable APPKIT_T_SECRET"),
        ("[auth]\nsigning_keys_path = 'env(APPKIT_T_A)'", "auth.signing_keys_path: environment variable APPKIT_T_A"),
        ("[storage.buckets.b]\npublic = 'env(APPKIT_T_A)'", "storage.buckets.b.public: environment variable APPKIT_T_A"),
    ],
)
def test_unset_env_in_a_typed_or_secret_setting_is_one_clear_error(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(project(tmp_path, text))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_env_values_convert_like_literal_ones(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APPKIT_T_PORT", "6123")
    clean_env.setenv("APPKIT_T_A", "true")
    cfg = load_config(project(tmp_path, "[api]\nport = 'env(APPKIT_T_PORT)'\n[storage.buckets.b]\npublic = 'env(APPKIT_T_A)'"))
    assert cfg.api.port == 6123 and cfg.storage.buckets["b"].public is True


def test_env_files_resolve_as_the_supabase_cli_does(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    cfg_path = project(tmp_path, "[auth]\nsite_url = 'env(APPKIT_T_SITE)'\njwt_secret = 'env(APPKIT_T_SECRET)'\n"
                                 "[api]\nport = 'env(APPKIT_T_PORT)'")
    (tmp_path / "supabase" / ".env").write_text("APPKIT_T_SITE=http://supabase-dir\nAPPKIT_T_PORT=7001\n")
    (tmp_path / "supabase" / ".env.local").write_text("APPKIT_T_SITE=http://supabase-dir-local\n")
    (tmp_path / ".env").write_text(f"APPKIT_T_SITE=http://root\nAPPKIT_T_SECRET={'r' * 40}\nAPPKIT_T_PORT=7002\n")
    cfg = load_config(cfg_path)
    # supabase/ before the project folder; .env.local before .env
    assert (cfg.auth.site_url, cfg.auth.jwt_secret, cfg.api.port) == ("http://supabase-dir-local", "r" * 40, 7001)
    clean_env.setenv("SUPABASE_ENV", "test")  # test skips .env.local
    assert load_config(cfg_path).auth.site_url == "http://supabase-dir"
    clean_env.setenv("APPKIT_T_SITE", "http://process")  # the process environment wins
    assert load_config(cfg_path).auth.site_url == "http://process"


def test_did_you_mean_only_for_likely_typos_of_keys_appkit_reads(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    cfg = load_config(project(tmp_path, """
[api]
prot = 1
[auth]
jwt_expiy = 60
jwt_issuer = "a Supabase CLI key appkit does not read"
some_future_cli_key = 1
[auth.emial]
enable_signup = true
[storage.buckets.pics]
pubilc = true
[brand_new_section]
x = 1
"""))
    assert sorted(w.split(": ", 1)[1] for w in cfg.warnings) == [
        "unknown key api.prot (did you mean api.port?)",
        "unknown key auth.emial (did you mean auth.email?)",
        "unknown key auth.jwt_expiy (did you mean auth.jwt_expiry?)",
        "unknown key storage.buckets.pics.pubilc (did you mean storage.buckets.pics.public?)",
    ]
    assert cfg.api.port == 54321  # the typo does not set the key


def test_env_file_that_cannot_be_read_is_one_clear_error(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    cfg_path = project(tmp_path, "[auth]\nsite_url = 'env(APPKIT_T_SITE)'")
    (tmp_path / ".env").write_bytes(b"APPKIT_T_SITE=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"\.env: cannot read"):
        load_config(cfg_path)
