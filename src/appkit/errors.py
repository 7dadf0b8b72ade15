"""One exception hierarchy for every appkit service, the local stack and the CLI.

Every error carries the server's ``code``, ``message`` and ``hint`` when there is one,
so callers can branch on them without parsing strings.
"""

from __future__ import annotations

from typing import Any


class AppKitError(Exception):
    """Base class of every error appkit raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        details: Any = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.details = details
        self.status = status

    def __str__(self) -> str:
        return self.message


class ConfigError(AppKitError):
    """A configuration file or setting is missing or malformed."""


class AuthError(AppKitError):
    """Authentication failed: bad credentials, bad or expired token."""


class PermissionDenied(AppKitError):
    """The caller is authenticated but row-level security or grants deny the action."""


class NotFound(AppKitError):
    """The resource does not exist or is hidden from the caller."""


class Conflict(AppKitError):
    """The action conflicts with existing state (unique key, already running, ...)."""


class ValidationError(AppKitError):
    """The input is malformed."""


class RateLimited(AppKitError):
    """The server asked the caller to slow down."""


class ServiceUnavailable(AppKitError):
    """The service cannot be reached or is not ready."""


class Timeout(ServiceUnavailable):
    """A call did not finish within its timeout."""


class UploadInterrupted(ServiceUnavailable):
    """A resumable upload stopped before the end; pass ``upload_url`` as ``resume_url`` to continue.

    ``offset`` is how many bytes the server has kept.
    """

    def __init__(self, message: str, *, upload_url: str, offset: int, code: str | None = None) -> None:
        super().__init__(message, code=code or "upload_interrupted")
        self.upload_url = upload_url
        self.offset = offset


class UnexpectedResponse(AppKitError):
    """The server answered with a body appkit could not understand (e.g. a proxy's HTML page)."""


class ConfirmationRequired(AuthError):
    """Sign-up succeeded but the account must be confirmed (email/phone) before it has a session.

    ``user_id`` is the new user's id when the server returned one.
    """

    def __init__(self, message: str, *, user_id: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code or "confirmation_required")
        self.user_id = user_id


class DatabaseError(AppKitError):
    """Postgres reported an error (carries SQLSTATE in ``code``)."""


class MigrationError(DatabaseError):
    """A migration file failed to apply; it was rolled back.

    ``file`` and ``line`` locate the failing statement.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.file = file
        self.line = line


class MigrationDriftError(MigrationError):
    """An already-applied migration file changed on disk."""


class StackError(AppKitError):
    """The local stack could not be started, stopped or reached."""


__all__ = [
    "AppKitError",
    "AuthError",
    "ConfigError",
    "ConfirmationRequired",
    "Conflict",
    "DatabaseError",
    "MigrationDriftError",
    "MigrationError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
    "StackError",
    "Timeout",
    "UnexpectedResponse",
    "UploadInterrupted",
    "ValidationError",
]
