"""FastAPI integration: a dependency that verifies the caller's bearer token and yields a
client scoped to that user (so RLS decides), plus handlers turning ``appkit.errors`` into
HTTP answers.

.. code-block:: python

    kit = AsyncAppKit.from_env()
    current_user = user_dependency(kit)

    @api.get("/notes")
    async def notes(user: Annotated[UserContext[AsyncAppKit], Depends(current_user)]) -> list[Note]:
        return await user.client.table(Note).list()

Tokens are verified locally (``app.auth.verify``: HS256 secret or the project's JWKS);
a missing, malformed, expired or forged token gets ``401`` with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from appkit import errors
from appkit._async.client import AsyncAppKit
from appkit._sync.client import AppKit
from appkit.auth.jwt import Principal

C = TypeVar("C", AppKit, AsyncAppKit)

_bearer = HTTPBearer(auto_error=False, description="A Supabase access token")


@dataclass(frozen=True)
class UserContext(Generic[C]):
    """The verified caller and a client that runs every call under their JWT."""

    principal: Principal
    client: C
    token: str


def _unauthorized(message: str, code: str | None) -> HTTPException:
    return HTTPException(status_code=401, detail={"message": message, "code": code},
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status_code=401, detail={"message": "missing bearer token", "code": "no_authorization"},
                            headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials


def _check_role(principal: Principal, allow_anonymous: bool) -> None:
    if not principal.is_authenticated:
        raise _unauthorized("a signed-in user is required", "not_authenticated")
    if principal.is_anonymous and not allow_anonymous:
        raise HTTPException(status_code=403, detail={"message": "anonymous users are not allowed",
                                                     "code": "anonymous_user"})


@overload
def user_dependency(kit: AsyncAppKit, *, allow_anonymous: bool = ...) -> Callable[
        [HTTPAuthorizationCredentials | None], Awaitable[UserContext[AsyncAppKit]]]: ...


@overload
def user_dependency(kit: AppKit, *, allow_anonymous: bool = ...) -> Callable[
        [HTTPAuthorizationCredentials | None], UserContext[AppKit]]: ...


def user_dependency(kit: AppKit | AsyncAppKit, *, allow_anonymous: bool = True) -> object:
    """A FastAPI dependency: verify ``Authorization: Bearer <jwt>`` and return a ``UserContext``.

    With an ``AsyncAppKit`` the dependency is async; with an ``AppKit`` it is sync (FastAPI
    runs it in its thread pool).
    """
    from fastapi import Security

    if isinstance(kit, AsyncAppKit):
        async_kit = kit

        async def current_user_async(
            credentials: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
        ) -> UserContext[AsyncAppKit]:
            token = _token(credentials)
            try:
                principal = await async_kit.auth.verify(token)
            except errors.AuthError as exc:
                raise _unauthorized(exc.message, exc.code) from None
            _check_role(principal, allow_anonymous)
            return UserContext(principal=principal, client=async_kit.as_user(token), token=token)

        return current_user_async

    sync_kit = kit

    def current_user(
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
    ) -> UserContext[AppKit]:
        token = _token(credentials)
        try:
            principal = sync_kit.auth.verify(token)
        except errors.AuthError as exc:
            raise _unauthorized(exc.message, exc.code) from None
        _check_role(principal, allow_anonymous)
        return UserContext(principal=principal, client=sync_kit.as_user(token), token=token)

    return current_user


STATUS: list[tuple[type[errors.AppKitError], int]] = [
    (errors.AuthError, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.ValidationError, 422),
    (errors.RateLimited, 429),
    (errors.Timeout, 504),
    (errors.ServiceUnavailable, 503),
    (errors.UnexpectedResponse, 502),
]


def status_for(exc: errors.AppKitError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def install_error_handlers(api: FastAPI) -> None:
    """Answer ``appkit.errors`` raised by endpoints with their HTTP status and ``{message, code, hint}``."""

    async def handle(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.AppKitError)
        status = status_for(exc)
        body = {"message": exc.message if status < 500 or status in (502, 503, 504) else "internal error",
                "code": exc.code, "hint": exc.hint}
        return JSONResponse(body, status_code=status)

    api.add_exception_handler(errors.AppKitError, handle)


__all__ = ["UserContext", "install_error_handlers", "status_for", "user_dependency"]
