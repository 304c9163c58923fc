"""List schedules: when an immediate list may alert at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from face_watchlist.gallery.store import Store
from face_watchlist.outputs.messages import review_state
from face_watchlist.trust.schedule import ScheduleError, covers

MONDAY_NOON = datetime(2026, 11, 23, 12, 0)
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0)


def test_school_hours() -> None:
    hours = "mon-fri 07:00-17:00"
    assert covers(hours, MONDAY_NOON)
    assert not covers(hours, SATURDAY_NOON)
    assert not covers(hours, MONDAY_NOON.replace(hour=17))  # the end is excluded
    assert covers(hours, MONDAY_NOON.replace(hour=7))
    assert covers(None, SATURDAY_NOON)  # no schedule: always


def test_several_periods_lists_and_midnight() -> None:
    text = "mon,wed 08:00-09:00; sat 22:00-02:00"
    assert covers(text, datetime(2026, 11, 25, 8, 30))  # Wednesday
    assert not covers(text, datetime(2026, 11, 24, 8, 30))  # Tuesday
    assert covers(text, datetime(2026, 11, 28, 23, 0))  # Saturday night
    assert covers(text, datetime(2026, 11, 29, 1, 0))  # ... into Sunday
    assert not covers(text, datetime(2026, 11, 29, 23, 0))
    assert covers("sun-mon 00:00-24:00", datetime(2026, 11, 30, 23, 59))  # a range over the week's end


@pytest.mark.parametrize(
    "text", ["weekdays 07:00-17:00", "mon-fri 7-17", "mon-fri 25:00-26:00", "", "mon-xyz 07:00-08:00"]
)
def test_bad_schedules_are_clear_errors(text: str) -> None:
    with pytest.raises(ScheduleError, match="schedule"):
        covers(text, MONDAY_NOON)


def test_an_immediate_list_outside_its_schedule_waits_for_review(tmp_path: Path) -> None:
    store = Store(tmp_path)
    gate = store.create_list("gate", policy="immediate", schedule="mon-fri 07:00-17:00")
    assert store.get_list("gate").schedule == "mon-fri 07:00-17:00"
    assert review_state(gate.policy, gate.schedule, MONDAY_NOON) == "alert"
    assert review_state(gate.policy, gate.schedule, SATURDAY_NOON) == "pending_review"
    assert review_state("review_first", None, MONDAY_NOON) == "pending_review"
    assert review_state("immediate", None, SATURDAY_NOON) == "alert"
    with pytest.raises(ScheduleError):
        store.update_list("gate", schedule="weekdays")
    assert store.update_list("gate", schedule=None).schedule is None
    (entry,) = [e for e in store.audit.entries() if e.action == "list.create"]
    assert "mon-fri 07:00-17:00" in entry.details
    store.close()
