"""bcrypt password hashes (cost 10 as Supabase Auth), computed off the event loop.

Also understood: the ``$pbkdf2-sha256$`` hashes that ``crypt(pw, gen_salt('bf'))`` makes in
the embedded server's pgcrypto shim (seed files); :meth:`Hasher.upgrade` replaces one by a
bcrypt hash at the user's first sign-in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from typing import Any
from uuid import UUID

import bcrypt

from appkit.local.auth.errors import unprocessable
from appkit.local.config import AuthConfig

#: Supabase Auth's cost; APPKIT_AUTH_BCRYPT_COST lowers it for tests (4..31).
DEFAULT_COST = 10
MAX_PASSWORD_BYTES = 72
#: the format the pgcrypto shim's crypt() writes (passlib's modular format for PBKDF2-SHA256)
SEED_HASH_PREFIX = "$pbkdf2-sha256$"
_MAX_SEED_ITERATIONS = 1_000_000

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
_SYMBOLS = "!@#$%^&*()_+-=[]{};'\\:\"|<>?,./`~"
_REQUIREMENTS = {
    "": [],
    "letters_digits": [_LOWER + _UPPER, _DIGITS],
    "lower_upper_letters_digits": [_LOWER, _UPPER, _DIGITS],
    "lower_upper_letters_digits_symbols": [_LOWER, _UPPER, _DIGITS, _SYMBOLS],
}


def bcrypt_cost() -> int:
    raw = os.environ.get("APPKIT_AUTH_BCRYPT_COST", "")
    try:
        cost = int(raw) if raw else DEFAULT_COST
    except ValueError:
        cost = DEFAULT_COST
    return min(max(cost, 4), 31)


def _ab64(text: str) -> bytes:
    """passlib's adapted base64 ('.' for '+', no padding)."""
    return base64.b64decode(text.replace(".", "+") + "=" * (-len(text) % 4), validate=True)


def check_seed_hash(password: str, hashed: str) -> bool:
    """Verify a ``$pbkdf2-sha256$<iterations>$<salt>$<hash>`` made by the pgcrypto shim."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "pbkdf2-sha256" or not (parts[2].isascii() and parts[2].isdigit()):
        return False
    iterations = int(parts[2])
    try:
        salt, want = _ab64(parts[3]), _ab64(parts[4])
    except (binascii.Error, ValueError):
        return False
    if not 1 <= iterations <= _MAX_SEED_ITERATIONS or not want:
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=len(want))
    return hmac.compare_digest(got, want)


class Hasher:
    def __init__(self, cost: int | None = None) -> None:
        self.cost = cost or bcrypt_cost()
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> str:
        pw = password.encode("utf-8")
        out = await asyncio.to_thread(bcrypt.hashpw, pw, bcrypt.gensalt(self.cost))
        return out.decode("ascii")

    async def check(self, password: str, hashed: str | None) -> bool:
        """Compare in constant time; an unknown user (``hashed`` None) costs the same bcrypt work."""
        if hashed and hashed.startswith(SEED_HASH_PREFIX):
            return await asyncio.to_thread(check_seed_hash, password, hashed)
        pw = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
        target: bytes
        if hashed and hashed.startswith("$2"):
            target = hashed.encode("ascii")
        else:
            if self._dummy is None:
                self._dummy = await asyncio.to_thread(bcrypt.hashpw, b"appkit-dummy", bcrypt.gensalt(self.cost))
            target = self._dummy
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, pw, target)
        except ValueError:
            return False
        return bool(ok) and target is not self._dummy

    async def upgrade(self, pool: Any, user_id: UUID, password: str, hashed: str | None) -> None:
        """After a successful sign-in, replace a seed file's PBKDF2 hash by bcrypt (once).

        ``pool`` is the service's psycopg connection pool. The update only applies while the
        row still holds ``hashed``, so a password changed meanwhile is never overwritten.
        """
        if not hashed or not hashed.startswith(SEED_HASH_PREFIX):
            return
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return  # bcrypt would cut it: keep the hash that checks the whole password
        new = await self.hash(password)
        async with pool.connection() as conn:
            await conn.execute(
                "update auth.users set encrypted_password = %s where id = %s and encrypted_password = %s",
                (new, user_id, hashed),
            )


def check_strength(config: AuthConfig, password: str) -> None:
    """Raise GoTrue's ``weak_password`` (422) when the password breaks the configured rules."""
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise unprocessable("validation_failed", "Password cannot be longer than 72 characters")
    reasons: list[str] = []
    messages: list[str] = []
    if len(password) < config.minimum_password_length:
        reasons.append("length")
        messages.append(f"Password should be at least {config.minimum_password_length} characters.")
    sets = _REQUIREMENTS.get(config.password_requirements, [])
    if sets and not all(any(c in s for c in password) for s in sets):
        reasons.append("characters")
        messages.append("Password should contain at least one character of each: " + ", ".join(sets) + ".")
    if reasons:
        raise unprocessable("weak_password", " ".join(messages), weak_password={"reasons": reasons})
