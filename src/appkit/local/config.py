"""``supabase/config.toml``: the Supabase CLI's project config, read with the CLI's defaults.

Only the keys the local stack uses are modelled; every other key is accepted and kept
(the Supabase CLI file has many sections for services we do not run). Values may use the
CLI's ``env(NAME)`` form. Malformed files raise :class:`appkit.errors.ConfigError` with a
one-line message naming the file and, where TOML says so, the line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from appkit.errors import ConfigError

DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_ENV_RE = re.compile(r"^env\(([A-Za-z_][A-Za-z0-9_]*)\)$")


def parse_size(value: int | str) -> int:
    """Parse ``"50MiB"`` / ``"1GB"`` / ``1024`` into bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 50MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return value
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"invalid size {value!r} (expected e.g. 50MiB)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _UNITS[unit])


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ApiConfig(_Section):
    enabled: bool = True
    port: int = Field(54321, ge=1, le=65535)
    schemas: list[str] = ["public", "graphql_public"]
    extra_search_path: list[str] = ["public", "extensions"]
    max_rows: int = Field(1000, ge=1)


class DbSeedConfig(_Section):
    enabled: bool = True
    sql_paths: list[str] = ["./seed.sql"]


class DbMigrationsConfig(_Section):
    enabled: bool = True


class DbConfig(_Section):
    port: int = Field(54322, ge=1, le=65535)
    major_version: int = 17
    seed: DbSeedConfig = DbSeedConfig()
    migrations: DbMigrationsConfig = DbMigrationsConfig()


class BucketConfig(_Section):
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    objects_path: str | None = None

    @field_validator("file_size_limit", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return None if v is None else parse_size(v)


class StorageConfig(_Section):
    enabled: bool = True
    file_size_limit: int = 50 * 1024**2
    buckets: dict[str, BucketConfig] = {}

    @field_validator("file_size_limit", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v)

    @field_validator("buckets")
    @classmethod
    def _bucket_names(cls, v: dict[str, BucketConfig]) -> dict[str, BucketConfig]:
        # Supabase Storage's bucket naming rule (the storage service checks it again)
        for name in v:
            if (not re.fullmatch(r"[\w!\-.*'() &$@=;:+,?]{1,100}", name, re.ASCII) or name in (".", "..")
                    or name != name.strip()):
                raise ValueError(f"invalid bucket name {name!r}")
        return v


class AuthEmailConfig(_Section):
    enable_signup: bool = True
    double_confirm_changes: bool = True
    enable_confirmations: bool = False
    secure_password_change: bool = False
    max_frequency: str = "1s"
    otp_length: int = Field(6, ge=6, le=10)
    otp_expiry: int = Field(3600, ge=1)


class AuthSmsConfig(_Section):
    enable_signup: bool = False
    enable_confirmations: bool = False
    template: str = "Your code is {{ .Code }}"
    max_frequency: str = "5s"


class AuthRateLimitConfig(_Section):
    email_sent: int = Field(2, ge=0)
    sms_sent: int = Field(30, ge=0)
    anonymous_users: int = Field(30, ge=0)
    token_refresh: int = Field(150, ge=0)
    sign_in_sign_ups: int = Field(30, ge=0)
    token_verifications: int = Field(30, ge=0)


class AuthConfig(_Section):
    enabled: bool = True
    site_url: str = "http://127.0.0.1:3000"
    additional_redirect_urls: list[str] = ["https://127.0.0.1:3000"]
    jwt_expiry: int = Field(3600, ge=30, le=604800)
    jwt_secret: str = DEFAULT_JWT_SECRET
    signing_keys_path: str | None = None
    enable_refresh_token_rotation: bool = True
    refresh_token_reuse_interval: int = Field(10, ge=0)
    enable_signup: bool = True
    enable_anonymous_sign_ins: bool = False
    enable_manual_linking: bool = False
    minimum_password_length: int = Field(6, ge=6)
    password_requirements: str = ""
    email: AuthEmailConfig = AuthEmailConfig()
    sms: AuthSmsConfig = AuthSmsConfig()
    rate_limit: AuthRateLimitConfig = AuthRateLimitConfig()

    @field_validator("jwt_secret")
    @classmethod
    def _secret_len(cls, v: str) -> str:
        if len(v) < 32:
            raise ValueError("must be at least 32 characters long")
        return v


class RealtimeConfig(_Section):
    enabled: bool = True


class ProjectConfig(_Section):
    """The parsed ``supabase/config.toml``."""

    project_id: str = "appkit"
    api: ApiConfig = ApiConfig()
    db: DbConfig = DbConfig()
    auth: AuthConfig = AuthConfig()
    storage: StorageConfig = StorageConfig()
    realtime: RealtimeConfig = RealtimeConfig()


def _substitute_env(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, where) for v in value]
    if isinstance(value, str):
        m = _ENV_RE.match(value.strip())
        if m:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return os.environ[name]
    return value


def _describe(err: PydanticValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}"


def load_config(path: Path) -> ProjectConfig:
    """Load ``config.toml``; a missing file yields the Supabase CLI's defaults."""
    if not path.exists():
        return ProjectConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = _substitute_env(raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    try:
        return ProjectConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
