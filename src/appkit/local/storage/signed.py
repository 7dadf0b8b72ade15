"""Signed URLs: signing downloads and uploads, and serving or accepting them with the token."""

from __future__ import annotations

import time
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

from appkit.local.storage import errors as E
from appkit.local.storage.db import StorageCaller
from appkit.local.storage.http import drain, encode_path, json_response, read_json
from appkit.local.storage.objects import Objects
from appkit.local.storage.paths import check_bucket_id, check_key

UPLOAD_SIGN_EXPIRY = 2 * 60 * 60


class SignedUrls(Objects):
    """The ``/object/sign`` and ``/object/upload/sign`` endpoints."""

    def _sign(self, claims: dict[str, Any], expires_in: int) -> str:
        now = int(time.time())
        return jwt.encode({**claims, "iat": now, "exp": now + expires_in}, self.ctx.keys.secret, algorithm="HS256")

    def verify_url_token(self, token: str | None, path: str) -> dict[str, Any]:
        if not token:
            raise E.StorageError(400, "InvalidRequest", "querystring must have required property 'token'", "Error")
        try:
            payload: dict[str, Any] = jwt.decode(token, self.ctx.keys.secret, algorithms=["HS256"],
                                                 options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise E.invalid_jwt("jwt expired") from None
        except jwt.PyJWTError:
            raise E.invalid_jwt("invalid signature") from None
        if payload.get("url") != path:
            raise E.invalid_signature()
        return payload

    @staticmethod
    def _expires_in(body: dict[str, Any]) -> int:
        value = body.get("expiresIn")
        try:
            if value is None or isinstance(value, bool):
                raise ValueError
            expires = int(value)
        except (TypeError, ValueError):
            raise E.StorageError(400, "InvalidRequest", "body/expiresIn must be integer >= 1", "Error") from None
        if expires < 1:
            raise E.StorageError(400, "InvalidRequest", "body/expiresIn must be >= 1", "Error")
        return expires

    async def sign_one(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_key(key)
        body = await read_json(request)
        expires = self._expires_in(body)
        await self.find_object(caller, bucket_id, key)
        claims: dict[str, Any] = {"url": f"{bucket_id}/{key}"}
        if isinstance(body.get("transform"), dict):
            claims["transformations"] = body["transform"]
        token = self._sign(claims, expires)
        return json_response({"signedURL": f"/object/sign/{encode_path(bucket_id, key)}?token={token}"})

    async def sign_many(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id = request.path_params["bucket"]
        body = await read_json(request)
        expires = self._expires_in(body)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or len(paths) > 1000:
            raise E.StorageError(400, "InvalidRequest", "body/paths must be an array of strings", "Error")
        async with self.database.as_caller(caller, "POST") as conn:
            rows = await (await conn.execute(
                "select name from storage.objects where bucket_id = %s and name = any(%s)",
                (bucket_id, paths))).fetchall()
        found = {r["name"] for r in rows}
        out = []
        for p in paths:
            if p in found:
                token = self._sign({"url": f"{bucket_id}/{p}"}, expires)
                out.append({"error": None, "path": p,
                            "signedURL": f"/object/sign/{encode_path(bucket_id, p)}?token={token}"})
            else:
                out.append({"error": "Either the object does not exist or you do not have access to it",
                            "path": p, "signedURL": None})
        return json_response(out)

    async def download_signed(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        self.verify_url_token(request.query_params.get("token"), f"{bucket_id}/{key}")
        check_key(key)
        row = await self.find_object(None, bucket_id, key)
        return self.serve(request, row, head=request.method == "HEAD")

    async def sign_upload(self, request: Request) -> Response:
        caller = self.caller(request)
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        check_bucket_id(bucket_id)
        check_key(key)
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        if await self.bucket_admin(bucket_id) is None:
            raise E.no_such_bucket()
        await self.check_insert(caller, bucket_id, key, upsert)
        token = self._sign({"owner": caller.sub, "role": caller.role, "url": f"{bucket_id}/{key}",
                            "upsert": upsert}, UPLOAD_SIGN_EXPIRY)
        return json_response({"url": f"/object/upload/sign/{encode_path(bucket_id, key)}?token={token}",
                              "token": token})

    async def upload_signed(self, request: Request) -> Response:
        bucket_id, key = request.path_params["bucket"], request.path_params["key"]
        try:
            payload = self.verify_url_token(request.query_params.get("token"), f"{bucket_id}/{key}")
        except E.StorageError:
            await drain(request.stream())
            raise
        owner_claims: dict[str, Any] = {"role": payload.get("role") or "authenticated"}
        if payload.get("owner"):
            owner_claims["sub"] = payload["owner"]
        owner = StorageCaller(str(owner_claims["role"]), owner_claims)
        result = await self.store_upload(request, bucket_id, key, db_caller=None, owner=owner,
                                         upsert=bool(payload.get("upsert")), method="PUT")
        return json_response({"Key": result["Key"], "Id": result["Id"], "url": f"{bucket_id}/{key}"})
