"""bcrypt password hashes (cost 10 as Supabase Auth), computed off the event loop."""

from __future__ import annotations

import asyncio
import os

import bcrypt

from appkit.local.auth.errors import unprocessable
from appkit.local.config import AuthConfig

#: Supabase Auth's cost; APPKIT_AUTH_BCRYPT_COST lowers it for tests (4..31).
DEFAULT_COST = 10
MAX_PASSWORD_BYTES = 72

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
