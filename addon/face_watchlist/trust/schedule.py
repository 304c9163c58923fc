"""When a list may raise an alert at once: a weekly schedule such as `mon-fri 07:00-17:00`.

Outside its schedule an `immediate` list's match waits for a reviewer like a `review_first` one
(nothing is lost, nobody is alerted at night). Several periods are separated by `;`, days are
`mon`..`sun` (ranges `mon-fri`, lists `mon,wed`), times are local `HH:MM-HH:MM`; a period that ends
before it starts runs past midnight into the next day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

from face_watchlist.errors import FaceWatchlistError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIOD = re.compile(r"^\s*(?P<days>[a-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s*$")


class ScheduleError(FaceWatchlistError):
    """A schedule that cannot be read."""


@dataclass(frozen=True)
class Period:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def covers(self, when: datetime) -> bool:
        day, now = when.weekday(), when.time()
        if self.start <= self.end:
            return day in self.days and self.start <= now < self.end
        # past midnight: the evening of a listed day, or the early hours of the day after
        return (day in self.days and now >= self.start) or ((day - 1) % 7 in self.days and now < self.end)


def parse(text: str) -> tuple[Period, ...]:
    periods = []
    for part in text.lower().split(";"):
        match = _PERIOD.match(part)
        if match is None:
            raise ScheduleError(f"schedule {part.strip()!r}: expected e.g. 'mon-fri 07:00-17:00'")
        periods.append(Period(_days(match["days"]), _time(match["start"]), _time(match["end"])))
    return tuple(periods)


def covers(text: str | None, when: datetime) -> bool:
    """Whether `when` (local time) is inside the schedule; no schedule means always."""
    return text is None or any(period.covers(when) for period in parse(text))


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"schedule days {text!r}: use mon, tue, wed, thu, fri, sat, sun")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _time(text: str) -> time:
    hours, minutes = (int(v) for v in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ScheduleError(f"schedule time {text!r}: expected HH:MM")
    return time(hours, minutes)
