"""Partitions of the lakehouse: 1-minute windows of Kafka broker time for bronze."""

import os
from datetime import UTC, datetime

import dagster as dg

WINDOW_MINUTES = 1
WINDOW_MS = WINDOW_MINUTES * 60_000
MINUTE_KEY_FORMAT = "%Y-%m-%d-%H:%M"
# First window the platform lands: set LAKEHOUSE_PARTITIONS_START (UTC, YYYY-MM-DD-HH:MM) at go-live.
PARTITIONS_START = os.environ.get("LAKEHOUSE_PARTITIONS_START") or "2026-11-01-00:00"

minute_windows = dg.TimeWindowPartitionsDefinition(
    start=PARTITIONS_START, cron_schedule="* * * * *", fmt=MINUTE_KEY_FORMAT, timezone="UTC"
)


def window_key(window_start_ms: int) -> str:
    return datetime.fromtimestamp(window_start_ms / 1000, UTC).strftime(MINUTE_KEY_FORMAT)


def window_start_ms(key: str) -> int:
    return int(datetime.strptime(key, MINUTE_KEY_FORMAT).replace(tzinfo=UTC).timestamp() * 1000)
