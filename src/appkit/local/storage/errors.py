"""Supabase Storage's error shapes.

Storage answers errors with ``{"statusCode": "<status>", "code": "<ErrorCode>",
"error": "<legacy error>", "message": "..."}``. As in Supabase Storage, the HTTP status of
a handled error is 400 (500 for internal errors): the logical status travels in the body's
``statusCode`` string, which is what ``storage3`` and ``storage-js`` read. TUS endpoints
use the logical status as the HTTP status (the TUS protocol needs it).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response


class StorageError(Exception):
    """A handled error rendered in Storage's shape."""

    def __init__(self, status: int, code: str, message: str, error: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error or code
        self.http_status = http_status if http_status is not None else (500 if status == 500 else 400)

    def body(self) -> dict[str, str]:
        return {"statusCode": str(self.status), "code": self.code, "error": self.error, "message": self.message}

    def response(self, *, tus: bool = False, head: bool = False) -> Response:
        status = self.status if tus else self.http_status
        if head:
            return Response(status_code=status)
        headers = {"Tus-Resumable": "1.0.0"} if tus else None
        return JSONResponse(self.body(), status_code=status, headers=headers)


def no_such_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def no_such_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "Object not found", "not_found")


def no_such_upload() -> StorageError:
    return StorageError(404, "NoSuchUpload", "Upload not found")


def access_denied(message: str = "new row violates row-level security policy") -> StorageError:
    return StorageError(403, "AccessDenied", message, "Unauthorized")


def invalid_jwt(message: str = "Invalid JWT") -> StorageError:
    return StorageError(400, "InvalidJWT", message)


def invalid_signature(message: str = "Invalid signature") -> StorageError:
    return StorageError(400, "InvalidSignature", message)


def expired_token() -> StorageError:
    return StorageError(400, "ExpiredToken", "The provided token has expired.")


def key_exists() -> StorageError:
    return StorageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")


def bucket_exists() -> StorageError:
    return StorageError(409, "BucketAlreadyExists", "The resource already exists", "Duplicate")


def bucket_not_empty() -> StorageError:
    return StorageError(409, "ResourceNotEmpty", "The bucket you tried to delete is not empty")


def invalid_key(key: str) -> StorageError:
    return StorageError(400, "InvalidKey", f"Invalid key: {key}")


def invalid_bucket_name() -> StorageError:
    return StorageError(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input")


def invalid_request(message: str) -> StorageError:
    return StorageError(400, "InvalidRequest", message)


def invalid_mime_type(mime: str) -> StorageError:
    return StorageError(415, "InvalidMimeType", f"mime type {mime} is not supported", "invalid_mime_type")


def entity_too_large(entity: str = "object") -> StorageError:
    return StorageError(413, "EntityTooLarge", f"The {entity} exceeded the maximum allowed size",
                        "Payload too large")


def invalid_range() -> StorageError:
    return StorageError(400, "InvalidRange", "invalid range provided", "invalid_range")


def internal_error(message: str = "Internal server error") -> StorageError:
    return StorageError(500, "InternalError", message)


def database_timeout() -> StorageError:
    return StorageError(544, "DatabaseTimeout", "The connection to the database timed out", http_status=544)


def resource_locked() -> StorageError:
    return StorageError(423, "ResourceLocked", "The resource is locked")


def tus_error(status: int, message: str) -> StorageError:
    return StorageError(status, "TusError", message)
