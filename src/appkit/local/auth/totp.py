"""RFC 6238 TOTP (SHA-1, 30 s, 6 digits) as authenticator apps implement it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import struct
import time
from urllib.parse import quote, urlencode

import segno

PERIOD = 30
DIGITS = 6


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, at: float | None = None) -> str:
    counter = int((time.time() if at is None else at) // PERIOD)
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def verify(secret: str, code: str, *, window: int = 1, at: float | None = None) -> bool:
    """Constant-time check of ``code`` against the current step and ``window`` steps around it."""
    now = time.time() if at is None else at
    ok = False
    for step in range(-window, window + 1):
        ok |= hmac.compare_digest(code_at(secret, now + step * PERIOD).encode(), code.encode())
    return ok


def uri(secret: str, issuer: str, account: str) -> str:
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
                       "period": PERIOD})
    return f"otpauth://totp/{label}?{query}"


def qr_svg(text: str) -> str:
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="svg", xmldecl=False, scale=4)
    return buf.getvalue().decode("utf-8")
