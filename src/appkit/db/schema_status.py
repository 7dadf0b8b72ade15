"""Which of appkit's bundled migrations a database has (applied / missing / changed), and
whether the API exposes schema ``appkit``.

A bundled migration is recognised in ``supabase_migrations.schema_migrations`` by its name
(``appkit_NNNN_<name>``, whatever version its copy got); it is *changed* when the statements
recorded there differ from the bundled file's.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from appkit.db.bundled import BundledMigration, bundled_migrations
from appkit.db.migrations import MigrationRunner
from appkit.db.split import split_statements
from appkit.errors import ServiceUnavailable

SCHEMA = "appkit"

EXPOSE_HINT = (
    "expose it: locally add \"appkit\" to [api] schemas in supabase/config.toml (`appkit schema add` does), "
    "on a hosted project add it under Project Settings > API > Exposed schemas (Data API settings)"
)


@dataclass(frozen=True)
class BundledState:
    """One bundled migration and what the database has of it."""

    key: str
    state: str  # "applied", "missing" or "changed"
    version: str | None  # the version it was applied under

    @property
    def ok(self) -> bool:
        return self.state == "applied"


def bundled_states(conninfo: str, migrations: list[BundledMigration] | None = None) -> list[BundledState]:
    """The state of each bundled migration in the database at ``conninfo``."""
    history = MigrationRunner(conninfo).applied()
    by_name = {a.name: a for a in history.values() if a.name}
    out = []
    for b in migrations if migrations is not None else bundled_migrations():
        applied = by_name.get(b.key)
        if applied is None:
            out.append(BundledState(b.key, "missing", None))
            continue
        texts = [s.text for s in split_statements(b.sql)]
        changed = applied.statements is not None and list(applied.statements) != texts
        out.append(BundledState(b.key, "changed" if changed else "applied", applied.version))
    return out


def probe_exposed(api_url: str, api_key: str, *, timeout: float = 10.0) -> bool:
    """Ask the API (PostgREST) whether schema ``appkit`` is exposed: a request with
    ``Accept-Profile: appkit`` is refused with PGRST106 when it is not."""
    url = api_url.rstrip("/") + "/rest/v1/organizations"
    headers = {"apikey": api_key, "Authorization": f"Bearer {api_key}", "Accept-Profile": SCHEMA}
    try:
        r = httpx.get(url, params={"limit": "0"}, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"cannot reach the API at {api_url}: {type(exc).__name__}",
                                 code="connection_error") from None
    if r.status_code == 200:
        return True
    try:
        code = r.json().get("code")
    except ValueError:
        code = None
    if code == "PGRST106":
        return False
    if code in ("PGRST205", "42P01", "42501"):  # schema served; the table is missing or not readable
        return True
    raise ServiceUnavailable(f"unexpected answer from {url}: HTTP {r.status_code}", code="unexpected_response",
                             status=r.status_code)
