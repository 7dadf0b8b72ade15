"""PostgREST's request headers: ``Prefer`` (return, count, resolution, missing, tx, params,
handling, max-affected, timezone) and ``Range``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appkit.local.rest.errors import RestError


@dataclass
class Prefer:
    return_: str | None = None
    count: str | None = None
    resolution: str | None = None
    missing: str | None = None
    tx: str | None = None
    params: str | None = None
    handling: str | None = None
    max_affected: int | None = None
    timezone: str | None = None
    invalid: list[str] = field(default_factory=list)

    def applied(self) -> str:
        out: list[str] = []
        if self.resolution:
            out.append(f"resolution={self.resolution}")
        if self.missing:
            out.append(f"missing={self.missing}")
        if self.return_:
            out.append(f"return={self.return_}")
        if self.count:
            out.append(f"count={self.count}")
        if self.tx:
            out.append(f"tx={self.tx}")
        if self.handling:
            out.append(f"handling={self.handling}")
        if self.max_affected is not None:
            out.append(f"max-affected={self.max_affected}")
        if self.timezone:
            out.append(f"timezone={self.timezone}")
        return ", ".join(out)


_PREFER_VALUES = {
    "return": {"minimal", "headers-only", "representation"},
    "count": {"exact", "planned", "estimated"},
    "resolution": {"merge-duplicates", "ignore-duplicates"},
    "missing": {"default", "null"},
    "tx": {"commit", "rollback"},
    "params": {"single-object", "multiple-objects"},
    "handling": {"strict", "lenient"},
}


def parse_prefer(headers: list[str]) -> Prefer:
    p = Prefer()
    for header in headers:
        for item in header.split(","):
            item = item.strip()
            if not item:
                continue
            key, _, val = item.partition("=")
            key = key.strip()
            val = val.strip()
            if key == "timezone" and val:
                p.timezone = val
                continue
            if key == "max-affected":
                try:
                    p.max_affected = int(val)
                except ValueError:
                    p.invalid.append(item)
                continue
            allowed = _PREFER_VALUES.get(key)
            if allowed is None or val not in allowed:
                p.invalid.append(item)
                continue
            attr = "return_" if key == "return" else key
            setattr(p, attr, val)
    return p


def parse_range(header: str) -> tuple[int, int | None] | None:
    m = re.fullmatch(r"\s*(?:items=)?(\d+)-(\d*)\s*", header)
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else None
    if hi is not None and hi < lo:
        raise RestError(416, "PGRST103", "Requested range not satisfiable",
                       details="The lower boundary must be lower than or equal to the upper boundary "
                               "in the Range header.")
    return lo, hi
