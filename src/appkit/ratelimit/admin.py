"""Rate-limit buckets over a direct database connection (the CLI's ``show`` and ``reset``)."""

from __future__ import annotations

from appkit import errors
from appkit.db.connect import admin_session
from appkit.db.queries import load_queries
from appkit.ratelimit.models import MAX_KEY_LENGTH, Bucket, check_key

_Q = load_queries("appkit.ratelimit")


def _prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH + 64 or "\x00" in prefix:
        raise errors.ValidationError("prefix must be a string without NUL, at most 464 characters",
                                     code="invalid_rate_limit")
    return prefix


def list_buckets(db_url: str, *, prefix: str = "", limit: int = 100) -> list[Bucket]:
    """Stored buckets whose key starts with ``prefix``, most recently used first."""
    prefix = _prefix(prefix)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise errors.ValidationError("limit must be an integer from 1 to 100000", code="invalid_limit")
    with admin_session(db_url) as conn:
        rows = conn.execute(_Q["list_buckets"], {"prefix": prefix, "limit": limit}).fetchall()
    return [Bucket.model_validate(r) for r in rows]


def reset(db_url: str, key: str | None = None, *, prefix: str | None = None) -> int:
    """Delete the buckets of ``key`` (every capacity/rate), or of every key starting with ``prefix``."""
    if (key is None) == (prefix is None):
        raise errors.ValidationError("give exactly one of a key or a prefix", code="invalid_rate_limit")
    with admin_session(db_url) as conn:
        if key is not None:
            row = conn.execute(_Q["reset_key"], {"key": check_key(key)}).fetchone()
        else:
            p = _prefix(prefix)
            if not p:
                raise errors.ValidationError("the prefix must not be empty", code="invalid_rate_limit")
            row = conn.execute(_Q["reset_prefix"], {"prefix": p}).fetchone()
    return int(row["deleted"]) if row else 0
