"""Multi-factor authentication: enrolling, challenging, verifying and removing factors."""

from __future__ import annotations

import hmac
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from appkit.local.auth import mail, totp
from appkit.local.auth.endpoints.base import EndpointBase, durable
from appkit.local.auth.errors import (
    GoTrueError,
    bad_request,
    forbidden,
    not_found,
    unprocessable,
)
from appkit.local.auth.factors import delete_factor, fetch_factor
from appkit.local.auth.hooks import metadata
from appkit.local.auth.http import AuthRequest, ok
from appkit.local.auth.inputs import get_str, is_uuid, validate_phone
from appkit.local.auth.otp import new_otp, token_hash
from appkit.local.auth.users import audit, user_by_id

MFA_CHALLENGE_EXPIRY = 300


class MfaEndpoints(EndpointBase):
    """The caller's MFA factors."""

    async def factor_enroll(self, req: AuthRequest) -> Response:
        body = req.body
        factor_type = get_str(body, "factor_type")
        friendly = get_str(body, "friendly_name")
        issuer = get_str(body, "issuer") or (urlsplit(self.cfg.site_url).hostname or "appkit")
        if factor_type not in ("totp", "phone"):
            raise bad_request("validation_failed", "factor_type needs to be totp or phone")
        phone = validate_phone(get_str(body, "phone")) if factor_type == "phone" else None
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn, lock=True)
            if friendly:
                cur = await conn.execute("select 1 from auth.mfa_factors where user_id = %s and friendly_name = %s",
                                         (user["id"], friendly))
                if await cur.fetchone() is not None:
                    raise unprocessable("mfa_factor_name_conflict",
                                        f"A factor with the friendly name \"{friendly}\" for this user already exists")
            fid = str(uuid.uuid4())
            secret = totp.new_secret() if factor_type == "totp" else None
            await conn.execute(
                "insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at,"
                " updated_at, secret, phone) values (%s, %s, %s, %s, 'unverified', now(), now(), %s, %s)",
                (fid, user["id"], friendly or None, factor_type, secret, phone),
            )
            await audit(conn, "factor_in_progress", user, req.ip, factor_id=fid)
        out: dict[str, Any] = {"id": fid, "type": factor_type, "friendly_name": friendly}
        if secret is not None:
            uri = totp.uri(secret, issuer, user["email"] or user["phone"] or str(user["id"]))
            out["totp"] = {"qr_code": totp.qr_svg(uri), "secret": secret, "uri": uri}
        else:
            out["phone"] = phone
        return ok(out)

    async def factor_challenge(self, req: AuthRequest) -> Response:
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            _, user = await self._current(req, conn)
            factor = await fetch_factor(conn, user, factor_id)
            cid = str(uuid.uuid4())
            otp_hash = None
            if factor["factor_type"] == "phone":
                otp = new_otp(6)
                otp_hash = token_hash(str(factor["phone"]), otp)
                self._rate("sms_sent", "*", self.cfg.rate_limit.sms_sent, 3600.0, "over_sms_send_rate_limit",
                           "SMS rate limit exceeded")
                await mail.capture(conn, channel="sms", recipient=str(factor["phone"]), kind="mfa_challenge",
                                   otp=otp, user_id=str(user["id"]), sms_template=self.cfg.sms.template)
            cur = await conn.execute(
                "insert into auth.mfa_challenges (id, factor_id, created_at, ip_address, otp_code)"
                " values (%s, %s, now(), %s, %s) returning extract(epoch from created_at)::bigint",
                (cid, factor_id, req.ip or "127.0.0.1", otp_hash),
            )
            row = await cur.fetchone()
            assert row is not None
        return ok({"id": cid, "type": factor["factor_type"], "expires_at": int(row[0]) + MFA_CHALLENGE_EXPIRY})

    async def factor_verify(self, req: AuthRequest) -> Response:
        factor_id = req.request.path_params["factor_id"]
        challenge_id = get_str(req.body, "challenge_id")
        code = get_str(req.body, "code").strip()
        if not challenge_id or not code:
            raise bad_request("validation_failed", "challenge_id and code are required")
        self._ip_limit(req, "token_verifications")
        async with self.pool.connection() as conn, conn.transaction():
            claims, user = await self._current(req, conn)
            factor = await fetch_factor(conn, user, factor_id)
            if not is_uuid(challenge_id):
                raise not_found("mfa_factor_not_found", "MFA factor with the provided challenge ID not found")
            cur = await conn.execute(
                "select verified_at, created_at + make_interval(secs => %s) < now(), otp_code"
                " from auth.mfa_challenges where id = %s and factor_id = %s for update",
                (MFA_CHALLENGE_EXPIRY, challenge_id, factor_id),
            )
            ch = await cur.fetchone()
            if ch is None:
                raise not_found("mfa_factor_not_found", "MFA factor with the provided challenge ID not found")
            if ch[0] is not None or ch[1]:
                await conn.execute("delete from auth.mfa_challenges where id = %s", (challenge_id,))
                failure: GoTrueError | None = unprocessable(
                    "mfa_challenge_expired", f"MFA challenge {challenge_id} has expired, verify against another"
                    " challenge or create a new challenge.")
            else:
                if factor["factor_type"] == "totp":
                    valid = totp.verify(str(factor["secret"]), code)
                else:
                    expected = str(ch[2] or "")
                    valid = hmac.compare_digest(token_hash(str(factor["phone"]), code).encode(),
                                                expected.encode())
                failure = None if valid else unprocessable(
                    "mfa_verification_failed",
                    "Invalid TOTP code entered" if factor["factor_type"] == "totp" else "Invalid MFA Phone code"
                    " entered")
                if self.tokens.hooks.enabled("mfa_verification_attempt"):
                    # GoTrue: a "reject" decision signs the user out and answers 403 (committed here:
                    # the failure is raised after this transaction)
                    answer = await self.tokens.hooks.invoke("mfa_verification_attempt", {
                        "metadata": metadata("mfa_verification_attempt", req.ip), "user_id": str(user["id"]),
                        "factor_id": str(factor["id"]), "factor_type": factor["factor_type"], "valid": valid,
                    }, conn)
                    if answer.get("decision") == "reject":
                        await conn.execute("delete from auth.sessions where user_id = %s", (user["id"],))
                        message = answer.get("message")
                        failure = forbidden("mfa_verification_rejected", message if isinstance(message, str)
                                            and message else "Further MFA verification attempts will be rejected.")
            if failure is None:
                sid = claims.get("session_id")
                await conn.execute("update auth.mfa_challenges set verified_at = now() where id = %s",
                                   (challenge_id,))
                await conn.execute("update auth.mfa_factors set status = 'verified', updated_at = now(),"
                                   " last_challenged_at = now() where id = %s", (factor_id,))
                if not sid:
                    raise forbidden("session_not_found", "Session from session_id claim in JWT does not exist")
                await conn.execute("update auth.sessions set aal = 'aal2', factor_id = %s, updated_at = now()"
                                   " where id = %s", (factor_id, sid))
                method = "totp" if factor["factor_type"] == "totp" else "mfa/phone"
                await conn.execute(
                    "insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at,"
                    " authentication_method) values (gen_random_uuid(), %s, now(), now(), %s)"
                    " on conflict (session_id, authentication_method) do update set updated_at = now()",
                    (sid, method),
                )
                fresh = await user_by_id(conn, str(user["id"]))
                assert fresh is not None
                session = await self.tokens.reissue(conn, fresh, str(sid),
                                                    "mfa/totp" if factor["factor_type"] == "totp" else "mfa/phone")
                await audit(conn, "verification_attempted", fresh, req.ip, factor_id=factor_id)
        if failure is not None:
            raise failure
        return ok(session)

    async def factor_unenroll(self, req: AuthRequest) -> Response:
        factor_id = req.request.path_params["factor_id"]
        async with self.pool.connection() as conn, conn.transaction():
            await durable(conn)
            claims, user = await self._current(req, conn)
            factor = await fetch_factor(conn, user, factor_id)
            if factor["status"] == "verified" and claims.get("aal") != "aal2":
                raise unprocessable("insufficient_aal", "AAL2 required to unenroll verified factor")
            await delete_factor(conn, user, factor_id)
            await audit(conn, "factor_unenrolled", user, req.ip, factor_id=factor_id)
        return ok({"id": factor_id})
