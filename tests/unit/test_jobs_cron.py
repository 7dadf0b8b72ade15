"""Cron parsing and next-firing computation (5 fields, names, steps, DOM/DOW rule, DST), and the
named-query loader of the jobs worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appkit.errors import ValidationError
from appkit.jobs import Cron
from appkit.jobs.queries import QUERIES, parse


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("expr", "after", "expected"), [
    ("* * * * *", utc(2026, 1, 1, 10, 0, 30), utc(2026, 1, 1, 10, 1)),
    ("* * * * *", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 1)),
    ("*/15 * * * *", utc(2026, 1, 1, 10, 7), utc(2026, 1, 1, 10, 15)),
    ("5,35 9-17/4 * * *", utc(2026, 1, 1, 13, 36), utc(2026, 1, 1, 17, 5)),
    ("0 9 * * mon-fri", utc(2026, 1, 2, 10, 0), utc(2026, 1, 5, 9, 0)),  # Fri after 9 -> Mon
    ("0 0 1 jan *", utc(2026, 6, 1), utc(2027, 1, 1)),
    ("0 0 13 * fri", utc(2026, 1, 1), utc(2026, 1, 2)),  # DOM or DOW when both are restricted
    ("0 0 * * 7", utc(2026, 1, 1), utc(2026, 1, 4)),  # 7 is Sunday
    ("0 0 29 2 *", utc(2026, 3, 1), utc(2028, 2, 29)),
    ("@hourly", utc(2026, 1, 1, 10, 59), utc(2026, 1, 1, 11, 0)),
    ("@weekly", utc(2026, 1, 1), utc(2026, 1, 4)),
])
def test_next_after_utc(expr: str, after: datetime, expected: datetime) -> None:
    assert Cron.parse(expr).next_after(after) == expected


def test_time_zone_and_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    daily = Cron.parse("30 2 * * *")
    # 2026-03-29 02:30 does not exist in Paris (clocks jump 02:00 -> 03:00): skipped
    assert daily.next_after(utc(2026, 3, 28, 12), paris) == utc(2026, 3, 30, 0, 30)
    # 2026-10-25 02:30 happens twice: fires once, at the first (CEST, 00:30 UTC)
    assert daily.next_after(utc(2026, 10, 24, 12), "Europe/Paris") == utc(2026, 10, 25, 0, 30)
    assert daily.next_after(utc(2026, 10, 25, 0, 30), "Europe/Paris") == utc(2026, 10, 26, 1, 30)
    nine = Cron.parse("0 9 * * *")
    assert nine.next_after(utc(2026, 7, 1), "America/New_York") == utc(2026, 7, 1, 13)
    assert nine.next_after(utc(2026, 12, 1), "America/New_York") == utc(2026, 12, 1, 14)


@pytest.mark.parametrize("expr", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
    "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *", "0 0 31 2 *", "0 0 30 feb *",
])
def test_bad_expressions(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        Cron.parse(expr)
    assert info.value.code == "invalid_cron"


def test_bad_time_zone() -> None:
    for tz in ("Mars/Olympus", "", "../../etc/passwd"):
        with pytest.raises(ValidationError):
            Cron.parse("* * * * *").next_after(utc(2026, 1, 1), tz)
    with pytest.raises(ValidationError):
        Cron.parse("* * * * *").next_after(datetime(2026, 1, 1))


@settings(max_examples=200, deadline=None)
@given(minute=st.integers(0, 59), hour=st.integers(0, 23), step=st.integers(1, 30),
       start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
       tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]))
def test_next_after_matches_brute_force(minute: int, hour: int, step: int, start: datetime, tz: str) -> None:
    cron = Cron.parse(f"{minute}/{step} {hour} * * *")
    after = start.replace(tzinfo=UTC)
    got = cron.next_after(after, tz)
    assert got > after
    local = got.astimezone(ZoneInfo(tz))
    assert local.hour == hour and local.minute in range(minute, 60, step)
    # no firing in between: walk minute by minute (at most 2 days)
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t < got:
        lt = t.astimezone(ZoneInfo(tz))
        assert not (lt.hour == hour and lt.minute in range(minute, 60, step) and lt.fold == 0), t
        t += timedelta(minutes=1)


def test_queries_are_named_blocks() -> None:
    assert {"claim_jobs", "complete_jobs", "fail_job", "extend_leases", "release_jobs", "reap_expired",
            "fire_schedule", "purge_jobs", "listen"} <= set(QUERIES)
    assert all(q and not q.endswith(";") and "-- name" not in q for q in QUERIES.values())
    assert parse("-- name: a\n-- what a does\nselect 1;\n\n-- name: b\n-- b\nselect\n  2;\n") == {
        "a": "select 1", "b": "select\n  2"}
