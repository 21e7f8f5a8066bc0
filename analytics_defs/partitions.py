"""Partitions of the lakehouse: 1-minute windows of Kafka broker time for bronze, days of the events'
own time (UTC) for silver, features and the SQL models.

The first window is where this deployment's data starts (`Settings.first_window`: LAKEHOUSE_PARTITIONS_START,
else the minute the data directory first ran a stack), so the catalog shows real gaps only and
"backfill missing" never means tens of thousands of windows before any data existed. Event days start
LAKEHOUSE_EVENT_LOOKBACK_DAYS earlier: replayed and late events carry older dates than the broker time
they arrived at, and still reach their own day. The last event day is today (its partition is refreshed
during the day, and closed by the nightly schedule).
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from settings import MINUTE_FORMAT, current

WINDOW_MINUTES = 1
WINDOW_MS = WINDOW_MINUTES * 60_000
MINUTE_KEY_FORMAT = MINUTE_FORMAT
# How long after its end a window's offsets are final: the clock difference tolerated between this host
# and the broker (LogAppendTime) when deciding that a window has closed.
WINDOW_CLOSE_GRACE_MS = 2000


def minute_windows_from(start: datetime) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        start=start.strftime(MINUTE_KEY_FORMAT), cron_schedule="* * * * *", fmt=MINUTE_KEY_FORMAT, timezone="UTC"
    )


def event_days_from(first: date) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), timezone="UTC", end_offset=1)


minute_windows = minute_windows_from(current().first_window())
first_event_day = (current().first_window() - timedelta(days=current().event_lookback_days)).date()
event_days = event_days_from(first_event_day)


def outside_event_days(event_dates: dict[str, int], first_day: date | None = None) -> dict[str, int]:
    """The rows of `event_dates` (date -> rows) whose date is before the first event-day partition: late or
    replayed events bronze holds and silver cannot take until the partitions start earlier (README)."""
    first = (first_day or first_event_day).isoformat()
    return {day: rows for day, rows in event_dates.items() if day < first}


def window_key(window_start_ms: int) -> str:
    return datetime.fromtimestamp(window_start_ms / 1000, UTC).strftime(MINUTE_KEY_FORMAT)


def window_start_ms(key: str) -> int:
    return int(datetime.strptime(key, MINUTE_KEY_FORMAT).replace(tzinfo=UTC).timestamp() * 1000)


def day_of(key: str) -> date:
    """The date of a daily partition key (YYYY-MM-DD)."""
    return date.fromisoformat(key)
