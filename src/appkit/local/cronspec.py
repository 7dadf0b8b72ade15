"""pg_cron schedules: parse the text pg_cron accepts and tell which seconds a schedule is due.

The grammar is Vixie cron's as pg_cron parses it: five fields (minute, hour, day of month,
month, day of week) of numbers, names (``jan``-``dec``, ``sun``-``sat``), ``a-b`` ranges,
``,`` lists and ``/n`` steps (on ``*`` or a range), ``$`` for the last day of the month, the
``@hourly``-style macros, and pg_cron 1.5's ``'[1-59] seconds'`` intervals. As in cron, a day
matches when both day fields match if either of them starts with ``*``, else when either one
does. Times are UTC (pg_cron's default ``cron.timezone``). The SQL twin that validates
schedules inside Postgres is ``cron._appkit_schedule_is_valid`` (a test keeps them equal).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_SECONDS = re.compile(r"^\s*([0-9]+)\s*seconds?\s*$", re.ASCII)
_ITEM = re.compile(r"^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/([0-9]+))?$")
_LOW = (0, 0, 1, 1, 0)
_HIGH = (59, 23, 31, 12, 7)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "yearly": "0 0 1 1 *", "annually": "0 0 1 1 *", "monthly": "0 0 1 * *", "weekly": "0 0 * * 0",
    "daily": "0 0 * * *", "midnight": "0 0 * * *", "hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """The text is not a schedule pg_cron accepts."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; :meth:`due` says whether it fires at a given second."""

    text: str
    #: ``N`` for ``'N seconds'`` schedules, else None
    seconds: int | None = None
    #: ``@reboot``: runs once when the scheduler starts
    reboot: bool = False
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    day_star: bool = False
    weekday_star: bool = False
    last_day: bool = False

    def due(self, epoch_second: int) -> bool:
        """Whether the schedule fires at this UTC second (interval schedules at multiples of N)."""
        if self.reboot:
            return False
        if self.seconds is not None:
            return epoch_second % self.seconds == 0
        if epoch_second % 60:
            return False
        t = datetime.fromtimestamp(epoch_second, UTC)
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        last = calendar.monthrange(t.year, t.month)[1]
        day = t.day in self.days or (self.last_day and t.day == last)
        weekday = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return day and weekday
        return day or weekday


def _value(token: str, field: int) -> int | None:
    if token.isdigit():
        return int(token) if len(token) <= 9 else None
    names = _MONTHS if field == 3 else _DAYS if field == 4 else ()
    if token in names:
        return names.index(token) + (1 if field == 3 else 0)
    return None


def _field(text: str, field: int) -> frozenset[int]:
    out: set[int] = set()
    lo, hi = _LOW[field], _HIGH[field]
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise ScheduleError(item)
        first, second, step_text = m.groups()
        if (first == "*" and second is not None) or (first != "*" and second is None and step_text is not None):
            raise ScheduleError(item)
        if step_text is not None and len(step_text) > 9:
            raise ScheduleError(item)
        a: int | None
        b: int | None
        if first == "*":
            a, b = lo, hi
        else:
            a = _value(first, field)
            b = a if second is None else _value(second, field)
        step = int(step_text) if step_text is not None else 1
        if a is None or b is None or not (lo <= a <= hi and lo <= b <= hi) or not 1 <= step <= hi:
            raise ScheduleError(item)
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse(text: str) -> Schedule:
    """The schedule ``text`` stands for; :class:`ScheduleError` when pg_cron would reject it."""
    lowered = text.lower()
    m = _SECONDS.match(lowered)
    if m is not None:
        n = int(m.group(1)) if len(m.group(1)) <= 9 else 0
        if not 1 <= n <= 59:
            raise ScheduleError(text)
        return Schedule(text, seconds=n)
    spec = lowered.strip(" \t\n\r")
    if spec.startswith("@"):
        word = re.split(r"\s", spec[1:], maxsplit=1)[0]
        if word in ("reboot", "restart"):
            return Schedule(text, reboot=True)
        if word not in _MACROS:
            raise ScheduleError(text)
        spec = _MACROS[word]
    fields = re.split(r"\s+", spec)
    if len(fields) != 5:
        raise ScheduleError(text)
    last_day = fields[2] == "$"
    parsed = [_field("*" if i == 2 and last_day else f, i) for i, f in enumerate(fields)]
    weekdays = set(parsed[4])
    if 0 in weekdays or 7 in weekdays:
        weekdays |= {0, 7}
    return Schedule(
        text, minutes=parsed[0], hours=parsed[1], days=frozenset() if last_day else parsed[2],
        months=parsed[3], weekdays=frozenset(weekdays), day_star=fields[2].startswith("*"),
        weekday_star=fields[4].startswith("*"), last_day=last_day,
    )


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except ScheduleError:
        return False
    return True
