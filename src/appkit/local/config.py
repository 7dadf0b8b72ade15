"""``supabase/config.toml``: the Supabase CLI's project config, read with the CLI's defaults.

Only the keys the local stack uses are modelled; every other key is accepted and kept
(the Supabase CLI file has many sections for services we do not run). Values may use the
CLI's ``env(NAME)`` form, resolved from the environment and the project's ``.env`` files as
the Supabase CLI resolves them. Malformed files raise :class:`appkit.errors.ConfigError` with a
one-line message naming the file and, where TOML says so, the line.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from appkit.errors import ConfigError
from appkit.local.cli_config_keys import SUPABASE_CLI_KEYS

DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_ENV_RE = re.compile(r"^env\((.*)\)$")  # the Supabase CLI's pattern, matched on the value as written


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
    #: ``[db.vault]``: Vault secrets (name = value) created at start, as the Supabase CLI does
    vault: dict[str, str] = {}


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


#: GoTrue's hook names (``[auth.hook.<name>]``)
HOOK_NAMES = ("custom_access_token", "before_user_created", "password_verification_attempt",
              "mfa_verification_attempt", "send_email", "send_sms")
_HOOK_SECRET_RE = re.compile(r"^v1,whsec_[A-Za-z0-9+/=]{32,88}$")  # the Supabase CLI's rule
_PG_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "host.docker.internal")


class AuthHookConfig(_Section):
    enabled: bool = False
    uri: str = ""
    #: for http(s) hooks: ``v1,whsec_<base64>`` (several separated by ``|``)
    secrets: str = ""

    def check(self, name: str) -> None:
        """The Supabase CLI's and GoTrue's checks of an enabled hook; ValueError names the key."""
        if not self.enabled:
            return
        where = name  # the error is reported under auth.hook
        if not self.uri:
            raise ValueError(f"missing required field {where}.uri")
        parsed = urlsplit(self.uri)
        scheme = parsed.scheme.lower()
        if scheme in ("http", "https"):
            if not self.secrets:
                raise ValueError(f"missing required field {where}.secrets")
            if not all(_HOOK_SECRET_RE.match(s) for s in self.secrets.split("|")):
                raise ValueError(f'{where}.secrets must be formatted as "v1,whsec_<base64_encoded_secret>" '
                                 "with a minimum length of 32 characters")
            if scheme == "http" and parsed.hostname not in _LOCAL_HOSTS:
                raise ValueError(f"{where}.uri: only localhost, 127.0.0.1, and ::1 are supported with http")
        elif scheme == "pg-functions":
            if self.secrets:
                raise ValueError(f"{where}.secrets is unsupported for pg-functions URI")
            parts = parsed.path.split("/")
            if len(parts) < 3:
                raise ValueError(f"{where}.uri: URI path does not contain enough parts")
            if not _PG_NAME_RE.match(parts[1]):
                raise ValueError(f"{where}.uri: invalid schema name: {parts[1]}")
            if not _PG_NAME_RE.match(parts[2]):
                raise ValueError(f"{where}.uri: invalid function name: {parts[2]}")
        else:
            raise ValueError(f"{where}.uri should be a HTTP, HTTPS, or pg-functions URI")


class AuthHooksConfig(_Section):
    custom_access_token: AuthHookConfig = AuthHookConfig()
    before_user_created: AuthHookConfig = AuthHookConfig()
    password_verification_attempt: AuthHookConfig = AuthHookConfig()
    mfa_verification_attempt: AuthHookConfig = AuthHookConfig()
    send_email: AuthHookConfig = AuthHookConfig()
    send_sms: AuthHookConfig = AuthHookConfig()

    @model_validator(mode="after")
    def _check(self) -> AuthHooksConfig:
        for name in HOOK_NAMES:
            self.get(name).check(name)
        return self

    def get(self, name: str) -> AuthHookConfig:
        hook = getattr(self, name)
        assert isinstance(hook, AuthHookConfig)
        return hook


class AuthOAuthServerConfig(_Section):
    enabled: bool = False
    allow_dynamic_registration: bool = False
    authorization_url_path: str = "/oauth/consent"


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
    hook: AuthHooksConfig = AuthHooksConfig()
    oauth_server: AuthOAuthServerConfig = AuthOAuthServerConfig()

    @field_validator("jwt_secret")
    @classmethod
    def _secret_len(cls, v: str) -> str:
        if len(v) < 32:
            raise ValueError("must be at least 32 characters long")
        return v


class RealtimeConfig(_Section):
    enabled: bool = True


class StudioConfig(_Section):
    """``[studio]``: the web console ``appkit dev`` / ``appkit start`` serve beside the stack."""

    enabled: bool = True
    port: int = Field(54323, ge=1, le=65535)


class ProjectConfig(_Section):
    """The parsed ``supabase/config.toml``."""

    project_id: str = "appkit"
    api: ApiConfig = ApiConfig()
    db: DbConfig = DbConfig()
    auth: AuthConfig = AuthConfig()
    storage: StorageConfig = StorageConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    studio: StudioConfig = StudioConfig()
    #: one line per thing worth telling the user (a likely typo, an unset ``env(...)``)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What loading found worth telling the user: likely typos, unset ``env(...)`` variables."""
        return self._warnings

    @warnings.setter
    def warnings(self, value: list[str]) -> None:
        self._warnings = value


#: settings that are secrets: an unset ``env(NAME)`` there stops the stack instead of being
#: used literally (the Supabase CLI would sign tokens with the text ``env(NAME)``)
_SECRET_KEYS = frozenset({("auth", "jwt_secret"), ("auth", "signing_keys_path"),
                          *(("auth", "hook", name, "secrets") for name in HOOK_NAMES)})


@dataclass
class _EnvRef:
    path: tuple[str | int, ...]
    name: str


def dotenv_environment(supabase_dir: Path) -> dict[str, str]:
    """The variables ``env(NAME)`` sees: the process environment over the project's ``.env`` files.

    As the Supabase CLI: ``supabase/`` then the project folder, each with
    ``.env.<SUPABASE_ENV>.local``, ``.env.local`` (not for ``test``), ``.env.<SUPABASE_ENV>``
    and ``.env`` (``SUPABASE_ENV`` defaults to ``development``); the first definition wins and
    the process environment wins over all files.
    """
    stage = os.environ.get("SUPABASE_ENV") or "development"
    names = [f".env.{stage}.local", *([".env.local"] if stage != "test" else []), f".env.{stage}", ".env"]
    merged: dict[str, str] = {}
    for folder in (supabase_dir, supabase_dir.parent):
        for name in names:
            file = folder / name
            if not file.is_file():
                continue
            try:
                values = dotenv_values(file)
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{file}: cannot read: {exc}") from None
            for key, value in values.items():
                if value is not None:
                    merged.setdefault(key, value)
    merged.update(os.environ)
    return merged


def _substitute_env(
    value: Any, path: tuple[str | int, ...], env: dict[str, str], unresolved: list[_EnvRef]
) -> Any:
    """Replace ``env(NAME)`` strings by the variable's value; unset or empty ones stay as written.

    That is the Supabase CLI's rule: a reference it cannot resolve is kept verbatim, and
    only the settings that need it complain (see :func:`load_config`).
    """
    if isinstance(value, dict):
        return {k: _substitute_env(v, (*path, k), env, unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, (*path, i), env, unresolved) for i, v in enumerate(value)]
    if isinstance(value, str):
        m = _ENV_RE.match(value)
        if m:
            if env.get(m.group(1)):
                return env[m.group(1)]
            unresolved.append(_EnvRef(path, m.group(1)))
    return value


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _section_of(annotation: Any) -> tuple[type[_Section] | None, bool]:
    """The section model a field holds, and whether it is a ``dict`` of them (named entries)."""
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation, False
    if get_origin(annotation) is dict:
        inner = get_args(annotation)[1]
        if isinstance(inner, type) and issubclass(inner, _Section):
            return inner, True
    return None, False


def _read_keys(model: type[_Section], data: Any, path: tuple[str | int, ...],
               read: set[tuple[str | int, ...]], warnings: list[str]) -> None:
    """Collect the paths appkit reads and warn about likely typos of them (did-you-mean)."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            if key in SUPABASE_CLI_KEYS:
                continue  # a Supabase CLI setting appkit does not use: accepted as it is
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75)
            if close:
                where = _dotted((*path, key))
                warnings.append(f"unknown key {where} (did you mean {_dotted((*path, close[0]))}?)")
            continue
        sub, named = _section_of(fields[key].annotation)
        here = (*path, key)
        read.add(here)
        if sub is None:
            continue
        if named and isinstance(value, dict):
            for name, entry in value.items():
                read.add((*here, name))
                _read_keys(sub, entry, (*here, name), read, warnings)
        else:
            _read_keys(sub, value, here, read, warnings)


def _is_read(path: tuple[str | int, ...], read: set[tuple[str | int, ...]]) -> bool:
    key = tuple(p for p in path if not isinstance(p, int))  # list items belong to their key
    return key in read


def _describe(err: PydanticValidationError, unresolved: list[_EnvRef]) -> str:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    for ref in unresolved:
        if loc[: len(ref.path)] == ref.path:
            return f"{_dotted(ref.path)}: environment variable {ref.name} is not set"
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{_dotted(loc)}: {msg}"


def load_config(path: Path) -> ProjectConfig:
    """Load ``config.toml``; a missing file yields the Supabase CLI's defaults.

    Unknown keys and sections are accepted (the Supabase CLI's schema grows every release);
    an unknown key that looks like a typo of one appkit reads gets a did-you-mean warning in
    :attr:`ProjectConfig.warnings`. An ``env(NAME)`` whose variable is unset or empty is kept
    verbatim, as the Supabase CLI keeps it: harmless in a setting appkit does not use, a
    warning in a text setting appkit uses (the CLI's ``WARN: environment variable is
    unset``), and an error naming the variable in a typed setting (a port, a flag, a size)
    or a secret (``auth.jwt_secret``, ``auth.signing_keys_path``).
    """
    if not path.exists():
        return ProjectConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    unresolved: list[_EnvRef] = []
    data = _substitute_env(raw, (), dotenv_environment(path.parent), unresolved)
    read: set[tuple[str | int, ...]] = set()
    warnings: list[str] = []
    _read_keys(ProjectConfig, data, (), read, warnings)
    for ref in unresolved:
        if not _is_read(ref.path, read):
            continue
        if tuple(p for p in ref.path if not isinstance(p, int)) in _SECRET_KEYS:
            raise ConfigError(f"{path}: {_dotted(ref.path)}: environment variable {ref.name} is not set")
    try:
        config = ProjectConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, unresolved)}") from None
    warnings += [
        f"environment variable is unset: {ref.name} ({_dotted(ref.path)} is used as written)"
        for ref in unresolved if _is_read(ref.path, read)
    ]
    config.warnings = [f"{path}: {w}" for w in warnings]
    return config
