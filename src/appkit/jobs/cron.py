"""Five-field cron expressions (minute hour day-of-month month day-of-week) and their next firing in a time zone.

Syntax is Vixie cron's: ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists
``a,b``, month and weekday names (``jan``, ``mon``), ``7`` as Sunday, and the macros
``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``.
When both day fields are restricted, a day matches if either does (as cron does).

Times are wall-clock times in the schedule's zone: a time skipped by a daylight-saving jump
does not fire that day; a time that occurs twice fires once (the first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appkit.errors import ValidationError

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# (name, lowest, highest, names)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
]
_SEARCH_DAYS = 366 * 8  # enough for any satisfiable expression (Feb 29 on a given weekday recurs within 28 years,
# but "29 2 *" alone recurs within 8)


def _value(text: str, field: str, names: dict[str, int]) -> int:
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise ValidationError(f"invalid cron {field} value {text!r}", code="invalid_cron")
    return int(text)


def _parse_field(text: str, field: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValidationError(f"empty item in cron {field} {text!r}", code="invalid_cron")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValidationError(f"invalid cron {field} step {step_text!r}", code="invalid_cron")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, field, names), _value(b, field, names)
        else:
            start = _value(base, field, names)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi):
            raise ValidationError(f"cron {field} {part!r} is outside {lo}-{hi}", code="invalid_cron")
        if start > end:
            raise ValidationError(f"cron {field} range {part!r} runs backwards", code="invalid_cron")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``ValidationError`` if unknown)."""
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name or name.startswith("/"):
        raise ValidationError(f"unknown time zone {name!r}", code="invalid_timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r}", code="invalid_timezone") from None


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``Cron.parse("*/5 9-17 * * mon-fri")``."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month field is "*"
    any_weekday: bool  # day-of-week field is "*"

    @classmethod
    def parse(cls, expression: str) -> Cron:
        if not isinstance(expression, str):
            raise ValidationError("a cron expression must be a string", code="invalid_cron")
        text = _MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise ValidationError(f"a cron expression has 5 fields (minute hour day month weekday), "
                                  f"got {expression!r}", code="invalid_cron")
        sets = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        cron = cls(expression.strip(), sets[0], sets[1], sets[2], sets[3], weekdays,
                   parts[2].startswith("*"), parts[4].startswith("*"))
        if cron._first_day(date(2000, 1, 1), 366 * 30) is None:
            raise ValidationError(f"cron expression {expression!r} never fires", code="invalid_cron")
        return cron

    def _day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def _first_day(self, start: date, limit: int) -> date | None:
        d = start
        for _ in range(limit):
            if self._day_matches(d):
                return d
            d += timedelta(days=1)
        return None

    def next_after(self, after: datetime, tz: ZoneInfo | str = "UTC") -> datetime:
        """The first firing strictly after ``after`` (an aware datetime), as an aware UTC datetime."""
        if after.tzinfo is None:
            raise ValidationError("next_after needs an aware datetime", code="invalid_datetime")
        zone_info = zone(tz) if isinstance(tz, str) else tz
        local = after.astimezone(zone_info).replace(second=0, microsecond=0, tzinfo=None)
        day = local.date()
        start_minute = local.hour * 60 + local.minute  # candidates on the first day start here
        minutes = sorted(self.minutes)
        hours = sorted(self.hours)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for h in hours:
                    if h * 60 + 59 < start_minute:
                        continue
                    for m in minutes:
                        if h * 60 + m < start_minute:
                            continue
                        naive = datetime.combine(day, time(h, m))
                        aware = naive.replace(tzinfo=zone_info)
                        # a wall time skipped by a DST jump does not round-trip: it does not fire
                        if aware.astimezone(UTC).astimezone(zone_info).replace(tzinfo=None) != naive:
                            continue
                        result = aware.astimezone(UTC)
                        if result > after:
                            return result
            day += timedelta(days=1)
            start_minute = 0
        raise ValidationError(f"cron expression {self.expression!r} has no firing after {after.isoformat()}",
                              code="invalid_cron")
