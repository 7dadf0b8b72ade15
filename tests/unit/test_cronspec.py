"""pg_cron schedule grammar of the local stack's scheduler: what parses, what is rejected, and
which seconds each schedule is due (5 fields, names, steps, '$', macros, 'N seconds',
cron's day-of-month / day-of-week rule)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appkit.local.cronspec import ScheduleError, is_valid, parse

#: schedules pg_cron accepts (its README, its regression test, real projects)
VALID = [
    "* * * * *", "*/5 * * * *", "0 3 * * 6", "30 3 * * 6", "0 10 * * *", "0 9 * * mon-fri",
    "0 0 1 jan *", "0 0 13 * fri", "5,35 9-17/4 * * *", "0 0 $ * *", "0 12 * * 7", "0-59/15 * * * *",
    "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@reboot",
    "30 seconds", "1 second", "59 seconds", "5seconds", " 10 Seconds ", "0 0 1 JAN,Jul *", "  1 2 3 4 5  ",
]
INVALID = [
    "", " ", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
    "* * * 13 *", "* * * * 8", "1/5 * * * *", "*/0 * * * *", "*/60 * * * *", "a * * * *",
    "* * * january *", "* * * * sunday", "1-2-3 * * * *", "1,,2 * * * *", "*-5 * * * *",
    "0 seconds", "60 seconds", "-1 seconds", "30 minutes", "1 secondss", "seconds", "30 seconds ago",
    "@often", "@", "not a schedule", "$ * * * *", "* * $1 * *",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_schedules_parse(text: str) -> None:
    assert is_valid(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_schedules_are_rejected(text: str) -> None:
    assert not is_valid(text)
    with pytest.raises(ScheduleError):
        parse(text)


def at(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


@pytest.mark.parametrize(("text", "when", "due"), [
    ("* * * * *", at(2026, 1, 1, 10, 0), True),
    ("* * * * *", at(2026, 1, 1, 10, 0, 1), False),  # cron schedules fire on the minute
    ("*/15 * * * *", at(2026, 1, 1, 10, 45), True),
    ("*/15 * * * *", at(2026, 1, 1, 10, 46), False),
    ("5,35 9-17/4 * * *", at(2026, 1, 1, 13, 35), True),
    ("5,35 9-17/4 * * *", at(2026, 1, 1, 12, 35), False),
    ("0 9 * * mon-fri", at(2026, 1, 2, 9, 0), True),  # a Friday
    ("0 9 * * mon-fri", at(2026, 1, 3, 9, 0), False),  # a Saturday
    ("0 0 * * 7", at(2026, 1, 4), True),  # 7 is Sunday
    ("0 0 * * 0", at(2026, 1, 4), True),
    ("0 0 13 * fri", at(2026, 1, 2), True),  # both day fields restricted: either matches
    ("0 0 13 * fri", at(2026, 1, 13), True),
    ("0 0 13 * fri", at(2026, 1, 14), False),
    ("0 0 */2 * fri", at(2026, 1, 2), False),  # a '*' day field: both must match (Jan 2 is even)
    ("0 0 */2 * fri", at(2026, 1, 9), True),
    ("0 0 $ * *", at(2026, 2, 28), True),  # last day of the month
    ("0 0 $ * *", at(2024, 2, 28), False),
    ("0 0 $ * *", at(2024, 2, 29), True),
    ("@hourly", at(2026, 5, 5, 7, 0), True),
    ("@hourly", at(2026, 5, 5, 7, 1), False),
    ("@daily", at(2026, 5, 5), True),
    ("@weekly", at(2026, 1, 4), True),
    ("@weekly", at(2026, 1, 5), False),
    ("@monthly", at(2026, 3, 1), True),
    ("@yearly", at(2026, 1, 1), True),
    ("@yearly", at(2026, 2, 1), False),
    ("30 seconds", at(2026, 1, 1, 0, 0, 30), True),
    ("30 seconds", at(2026, 1, 1, 0, 0, 31), False),
    ("1 seconds", at(2026, 1, 1, 0, 0, 17), True),
    ("@reboot", at(2026, 1, 1), False),  # runs when the scheduler starts, not on a clock
])
def test_due(text: str, when: int, due: bool) -> None:
    assert parse(text).due(when) is due


def test_interval_and_reboot_kinds() -> None:
    assert parse("30 seconds").seconds == 30
    assert parse("@restart").reboot
    assert parse("0 0 1 1 *").seconds is None
