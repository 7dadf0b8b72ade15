"""SDK settings from the environment (and ``.env``), with the standard ``SUPABASE_*`` names.

==============================  =========================================================
``SUPABASE_URL``                the project URL (``http://127.0.0.1:54321`` locally)
``SUPABASE_ANON_KEY``           the anon (publishable) key
``SUPABASE_SERVICE_ROLE_KEY``   the service-role key (needed for ``app.admin``)
``SUPABASE_JWT_SECRET``         HS256 secret for ``app.auth.verify`` (else the JWKS is used)
``SUPABASE_DB_URL``             a direct Postgres URL (not used by the HTTP services)
``APPKIT_TIMEOUT``              seconds per HTTP call (default 10)
``APPKIT_CONNECT_TIMEOUT``      seconds to open a connection (default 5)
``APPKIT_MAX_RETRIES``          retries of idempotent calls on transient failures (default 3)
``APPKIT_RETRY_BACKOFF``        base of the exponential backoff in seconds (default 0.2)
``APPKIT_RETRY_MAX_BACKOFF``    cap of one backoff sleep in seconds (default 5)
``APPKIT_JWT_AUDIENCE``         audience ``verify`` requires (default ``authenticated``)
``APPKIT_JWKS_URL``             override of ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json``
==============================  =========================================================
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Connection and resilience settings of one Supabase project."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    url: str = Field(validation_alias=AliasChoices("SUPABASE_URL", "url"))
    anon_key: SecretStr = Field(validation_alias=AliasChoices("SUPABASE_ANON_KEY", "SUPABASE_KEY", "anon_key"))
    service_role_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY", "service_role_key")
    )
    jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SUPABASE_JWT_SECRET", "jwt_secret")
    )
    db_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SUPABASE_DB_URL", "db_url"))
    jwks_url: str | None = Field(default=None, validation_alias=AliasChoices("APPKIT_JWKS_URL", "jwks_url"))
    jwt_audience: str = Field(
        default="authenticated", validation_alias=AliasChoices("APPKIT_JWT_AUDIENCE", "jwt_audience")
    )
    schema_name: str = Field(default="public", validation_alias=AliasChoices("APPKIT_DB_SCHEMA", "schema_name"))
    timeout: float = Field(default=10.0, gt=0, validation_alias=AliasChoices("APPKIT_TIMEOUT", "timeout"))
    connect_timeout: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("APPKIT_CONNECT_TIMEOUT", "connect_timeout")
    )
    max_retries: int = Field(default=3, ge=0, validation_alias=AliasChoices("APPKIT_MAX_RETRIES", "max_retries"))
    retry_backoff: float = Field(
        default=0.2, ge=0, validation_alias=AliasChoices("APPKIT_RETRY_BACKOFF", "retry_backoff")
    )
    retry_max_backoff: float = Field(
        default=5.0, ge=0, validation_alias=AliasChoices("APPKIT_RETRY_MAX_BACKOFF", "retry_max_backoff")
    )
    refresh_margin: float = Field(
        default=60.0, ge=0, validation_alias=AliasChoices("APPKIT_REFRESH_MARGIN", "refresh_margin")
    )

    @field_validator("url")
    @classmethod
    def _strip_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("SUPABASE_URL must start with http:// or https://")
        return value

    @property
    def rest_url(self) -> str:
        return f"{self.url}/rest/v1"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth/v1"

    @property
    def storage_url(self) -> str:
        return f"{self.url}/storage/v1/"

    @property
    def realtime_url(self) -> str:
        return f"{self.url}/realtime/v1"

    @property
    def resolved_jwks_url(self) -> str:
        return self.jwks_url or f"{self.auth_url}/.well-known/jwks.json"
