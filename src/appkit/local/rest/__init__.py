"""PostgREST-compatible REST service for the local stack, mounted at ``/rest/v1``.

See ``docs/rest.md`` for what is supported and how it differs from PostgREST.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from appkit.local.context import StackContext
from appkit.local.rest.app import RestApp


class RestService:
    name = "rest"

    def __init__(self, ctx: StackContext) -> None:
        self.rest = RestApp(ctx)
        self.app: ASGIApp = self.rest

    async def startup(self) -> None:
        await self.rest.startup()

    async def shutdown(self) -> None:
        await self.rest.shutdown()


def create_service(ctx: StackContext) -> RestService:
    return RestService(ctx)


__all__ = ["RestService", "create_service"]
