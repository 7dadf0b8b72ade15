"""Who the scope's caller is: the signed-in user's id, read from their own access token."""

from __future__ import annotations

import base64
import json
from uuid import UUID

from appkit import errors
from appkit._async.scope import AsyncScope


async def caller_id(scope: AsyncScope, what: str) -> UUID:
    """The signed-in user's id; ``errors.AuthError`` for anon and the service role."""
    if scope.role != "user":
        raise errors.AuthError(f"{what} needs a signed-in user (app.as_user(session))", code="not_a_user")
    if scope.session is not None and scope.session.user is not None:
        return UUID(scope.session.user.id)
    token = await scope.token()
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return UUID(str(claims["sub"]))
    except (IndexError, ValueError, KeyError, TypeError):
        raise errors.AuthError("the access token carries no user id (sub)", code="bad_jwt") from None
