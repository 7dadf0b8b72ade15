"""Seed-file password hashes ($pbkdf2-sha256$, from the pgcrypto shim's crypt()) in the auth service."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from appkit.local.auth.passwords import Hasher, check_seed_hash


def ab64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().replace("+", ".").rstrip("=")


def seed_hash(password: str, salt: bytes = b"\xfb" * 16, iterations: int = 4096) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"$pbkdf2-sha256${iterations}${ab64(salt)}${ab64(digest)}"


def test_seed_hash_checks_the_whole_password() -> None:
    long = "é" * 60  # 120 bytes: beyond bcrypt's 72, the seed hash still covers all of it
    assert check_seed_hash("pw", seed_hash("pw"))
    assert check_seed_hash(long, seed_hash(long))
    assert not check_seed_hash(long[:-1], seed_hash(long))
    assert not check_seed_hash("pW", seed_hash("pw"))


@pytest.mark.parametrize("bad", [
    "$pbkdf2-sha256$", "$pbkdf2-sha1$4096$c2FsdA$c2FsdA", "$pbkdf2-sha256$-1$c2FsdA$c2FsdA",
    "$pbkdf2-sha256$0$c2FsdA$c2FsdA", "$pbkdf2-sha256$2000000$c2FsdA$c2FsdA", "$pbkdf2-sha256$4096$c2Fs!A$c2FsdA",
    "$pbkdf2-sha256$4096$c2FsdA$", "$pbkdf2-sha256$4096$c2FsdA$c2FsdA$extra", "$pbkdf2-sha256$٤٠$c2FsdA$c2FsdA",
])
def test_malformed_seed_hashes_never_match(bad: str) -> None:
    assert not check_seed_hash("pw", bad)


def test_hasher_checks_both_formats() -> None:
    hasher = Hasher(cost=4)

    async def run() -> tuple[bool, bool, bool, bool]:
        bcrypt_hash = await hasher.hash("pw")
        return (await hasher.check("pw", seed_hash("pw")), await hasher.check("no", seed_hash("pw")),
                await hasher.check("pw", bcrypt_hash), await hasher.check("pw", None))

    assert asyncio.run(run()) == (True, False, True, False)
