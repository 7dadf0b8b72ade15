"""The one boundary where the official clients' exceptions become ``appkit.errors``.

Every service method runs its client calls inside ``boundary()``; nothing from httpx,
postgrest, storage3, supabase_auth or realtime escapes it. The server's code, message,
hint and details are kept on the mapped error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pydantic
from postgrest.exceptions import APIError as PostgrestAPIError
from storage3.exceptions import StorageApiError
from storage3.utils import StorageException
from supabase_auth import errors as auth_errors

from appkit import errors

_PG_CLASS: dict[str, type[errors.AppKitError]] = {
    # PostgREST's own codes
    "PGRST116": errors.NotFound,  # singular response with 0 rows
    "PGRST205": errors.NotFound,  # table not in schema cache
    "PGRST202": errors.NotFound,  # function not found
    "PGRST200": errors.NotFound,  # relationship not found
    "PGRST204": errors.ValidationError,  # column not found
    "PGRST106": errors.ValidationError,  # schema not exposed
    "PGRST301": errors.AuthError,
    "PGRST302": errors.AuthError,
    "PGRST303": errors.AuthError,
    # SQLSTATE
    "42501": errors.PermissionDenied,  # insufficient_privilege / RLS with check
    "42P01": errors.NotFound,
    "42883": errors.NotFound,
    "42703": errors.ValidationError,  # undefined column
    "23505": errors.Conflict,
    "23503": errors.Conflict,
    "23P01": errors.Conflict,
    "40001": errors.Conflict,
    "40P01": errors.Conflict,
    "23502": errors.ValidationError,
    "23514": errors.ValidationError,
    "P0001": errors.ValidationError,  # raise exception in a trigger/function
    "P0002": errors.NotFound,  # no_data_found: raised by functions for what the caller cannot see (unknown org, job)
    "55000": errors.Conflict,  # object_not_in_prerequisite_state: a used invitation, the last owner, a running job
    "57014": errors.Timeout,  # statement timeout
}

_STATUS_CLASS: dict[int, type[errors.AppKitError]] = {
    400: errors.ValidationError,
    401: errors.AuthError,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    406: errors.NotFound,
    409: errors.Conflict,
    413: errors.ValidationError,
    415: errors.ValidationError,
    422: errors.ValidationError,
    429: errors.RateLimited,
    500: errors.ServiceUnavailable,
    502: errors.ServiceUnavailable,
    503: errors.ServiceUnavailable,
    504: errors.ServiceUnavailable,
    520: errors.ServiceUnavailable,
}

_AUTH_CODE_CLASS: dict[str, type[errors.AppKitError]] = {
    "user_already_exists": errors.Conflict,
    "email_exists": errors.Conflict,
    "phone_exists": errors.Conflict,
    "identity_already_exists": errors.Conflict,
    "conflict": errors.Conflict,
    "mfa_factor_name_conflict": errors.Conflict,
    "user_not_found": errors.NotFound,
    "identity_not_found": errors.NotFound,
    "mfa_factor_not_found": errors.NotFound,
    "validation_failed": errors.ValidationError,
    "bad_json": errors.ValidationError,
    "weak_password": errors.ValidationError,
    "email_address_invalid": errors.ValidationError,
    "same_password": errors.ValidationError,
    "not_admin": errors.PermissionDenied,
    "signup_disabled": errors.PermissionDenied,
    "email_provider_disabled": errors.PermissionDenied,
    "phone_provider_disabled": errors.PermissionDenied,
    "anonymous_provider_disabled": errors.PermissionDenied,
    "provider_disabled": errors.PermissionDenied,
    "over_request_rate_limit": errors.RateLimited,
    "over_email_send_rate_limit": errors.RateLimited,
    "over_sms_send_rate_limit": errors.RateLimited,
    "request_timeout": errors.Timeout,
    "flow_state_not_found": errors.AuthError,
    "flow_state_expired": errors.AuthError,
    "bad_code_verifier": errors.AuthError,
    "session_not_found": errors.AuthError,
    "otp_expired": errors.AuthError,
    "bad_jwt": errors.AuthError,
    "invalid_credentials": errors.AuthError,
    "insufficient_aal": errors.PermissionDenied,
    "hook_timeout": errors.Timeout,
}

_STORAGE_CODE_CLASS: dict[str, type[errors.AppKitError]] = {
    "not_found": errors.NotFound,
    "NoSuchKey": errors.NotFound,
    "NoSuchBucket": errors.NotFound,
    "NoSuchUpload": errors.NotFound,
    "Duplicate": errors.Conflict,
    "ResourceAlreadyExists": errors.Conflict,
    "BucketAlreadyExists": errors.Conflict,
    "KeyAlreadyExists": errors.Conflict,
    "InvalidJWT": errors.AuthError,
    "AccessDenied": errors.PermissionDenied,
    "Unauthorized": errors.PermissionDenied,
    "EntityTooLarge": errors.ValidationError,
    "Payload too large": errors.ValidationError,
    "InvalidMimeType": errors.ValidationError,
    "InvalidKey": errors.ValidationError,
    "InvalidRequest": errors.ValidationError,
    "InvalidBucketName": errors.ValidationError,
    "SlowDown": errors.RateLimited,
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _http_status(exc: BaseException) -> int | None:
    for e in _chain(exc):
        if isinstance(e, httpx.HTTPStatusError):
            return e.response.status_code
    return None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _transport(exc: BaseException) -> errors.AppKitError | None:
    """Network-level failure anywhere in the chain (clients wrap them differently)."""
    for e in _chain(exc):
        if isinstance(e, httpx.TimeoutException):
            return errors.Timeout(f"request timed out: {type(e).__name__}", code="timeout")
        if isinstance(e, httpx.TransportError):
            return errors.ServiceUnavailable(
                f"could not reach the server: {type(e).__name__}: {e}", code="connection_error"
            )
    return None


def map_postgrest(exc: PostgrestAPIError) -> errors.AppKitError:
    code = exc.code or ""
    message = exc.message or "request failed"
    cls = _PG_CLASS.get(code)
    status = _int(code) if code.isdigit() and len(code) == 3 else None
    if cls is None and status is not None:
        cls = _STATUS_CLASS.get(status)
        # A non-JSON error body: the client made up the code from the status.
        if status is not None and status >= 500 and not _looks_json(exc.details):
            cls = errors.ServiceUnavailable
    if status is not None and status < 400:
        # a success status whose body was not PostgREST JSON (e.g. a proxy's HTML page)
        return errors.UnexpectedResponse(f"the server's answer could not be parsed (HTTP {status})",
                                         code="unexpected_response", details=exc.details, status=status)
    if cls is None and code.startswith("PGRST1"):
        cls = errors.ValidationError
    if cls is None and code.startswith(("22", "23")):
        cls = errors.ValidationError
    if cls is None and len(code) == 5 and not code.startswith("PGRST"):
        cls = errors.DatabaseError
    if cls is None:
        cls = errors.AppKitError
    return cls(message, code=code or None, hint=exc.hint, details=exc.details, status=status)


def _looks_json(details: object) -> bool:
    if not isinstance(details, str):
        return True
    try:
        json.loads(details)
    except ValueError:
        return False
    return True


def map_auth(exc: auth_errors.AuthError) -> errors.AppKitError:
    transport = _transport(exc)
    if transport is not None:
        return transport
    status = getattr(exc, "status", None) or _http_status(exc)
    code = exc.code
    message = exc.message or "authentication failed"
    if isinstance(exc, auth_errors.AuthWeakPasswordError):
        return errors.ValidationError(message, code=code or "weak_password", details=exc.reasons, status=status)
    cls: type[errors.AppKitError] | None = _AUTH_CODE_CLASS.get(code or "")
    if cls is None and isinstance(exc, auth_errors.AuthRetryableError):
        cls = errors.ServiceUnavailable
    if cls is None and isinstance(status, int):
        if status == 429:
            cls = errors.RateLimited
        elif status >= 500:
            cls = errors.ServiceUnavailable
        elif status == 404:
            cls = errors.NotFound
    if cls is None and isinstance(exc, auth_errors.AuthUnknownError):
        cls = errors.UnexpectedResponse
    return (cls or errors.AuthError)(message, code=code, status=status if isinstance(status, int) else None)


def map_storage(exc: StorageException) -> errors.AppKitError:
    transport = _transport(exc)
    if transport is not None:
        return transport
    http_status = _http_status(exc)
    if isinstance(exc, StorageApiError):
        body_status = _int(exc.status)
        code = str(exc.code) if exc.code is not None else None
        message = str(exc.message)
        cls = _STORAGE_CODE_CLASS.get(code or "")
        if cls is None:
            for status in (body_status, http_status):
                if status is not None and status in _STATUS_CLASS:
                    cls = _STATUS_CLASS[status]
                    break
        if code in ("InternalError", "LibraryError") and http_status is not None and http_status < 500:
            cls = _STATUS_CLASS.get(http_status, cls)
        if code in ("InternalError", "LibraryError") and message.startswith(("Unable to parse", "The request")):
            cls = errors.UnexpectedResponse if (http_status or 0) < 500 else errors.ServiceUnavailable
        return (cls or errors.AppKitError)(message, code=code, status=http_status or body_status)
    return errors.AppKitError(str(exc), code="storage_error", status=http_status)


def map_exception(exc: BaseException) -> errors.AppKitError | None:
    """The appkit error for ``exc``, or None if it is not a client/transport failure."""
    if isinstance(exc, errors.AppKitError):
        return None
    if isinstance(exc, PostgrestAPIError):
        return map_postgrest(exc)
    if isinstance(exc, auth_errors.AuthError):
        return map_auth(exc)
    if isinstance(exc, StorageException):
        return map_storage(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        cls = _STATUS_CLASS.get(status, errors.AppKitError)
        return cls(f"HTTP {status}: {exc.response.text[:500]}", code=str(status), status=status)
    transport = _transport(exc)
    if transport is not None:
        return transport
    if isinstance(exc, httpx.HTTPError):
        return errors.UnexpectedResponse(f"{type(exc).__name__}: {exc}", code="http_error")
    if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
        return errors.UnexpectedResponse(f"the server's answer could not be parsed: {exc}",
                                         code="unexpected_response")
    return None


@contextmanager
def boundary() -> Iterator[None]:
    """Map any official-client or transport exception raised inside to ``appkit.errors``."""
    try:
        yield
    except Exception as exc:
        mapped = map_exception(exc)
        if mapped is None:
            raise
        raise mapped from exc


def from_response(response: httpx.Response) -> errors.AppKitError:
    """The appkit error for a failed storage answer read without an official client (TUS uploads)."""
    status = response.status_code
    code: str | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or body.get("error") or "") or None
        message = str(body.get("message") or body.get("error") or "")
    if not message:
        message = response.text.strip()[:300] or f"HTTP {status}"
    cls = _STORAGE_CODE_CLASS.get(code or "") or _STATUS_CLASS.get(status) or errors.AppKitError
    return cls(message, code=code or str(status), status=status)
