"""The micro-batch sensor: one bronze run per closed 1-minute window of Kafka broker time.

It reads offsets only (watermarks and `offsets_for_times`), never payloads, and never commits a
consumer group. A window [t, t+1min) is closed once broker time has passed t+1min (plus a small grace
for clock differences): `user-events` uses LogAppendTime, so nothing appended later can fall into it.
Each request carries the window's exact per-partition offset range in its tags; run_key = window, so
Dagster never launches the same window twice from this sensor. Empty windows are skipped, not run.
The cursor is the last window handled (requested, or found empty).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from analytics_defs.constants import BRONZE_LANDING_JOB, TAG_KAFKA_OFFSETS, TAG_KAFKA_TOPIC
from analytics_defs.partitions import (
    WINDOW_CLOSE_GRACE_MS,
    WINDOW_MS,
    minute_windows,
    window_key,
    window_start_ms,
)
from contract.topics import USER_EVENTS
from resources.kafka import KafkaResource, OffsetReader, PartitionRange, ranges_to_json

# Runs requested per tick at most: a long outage is caught up over several ticks, not in one flood.
MAX_REQUESTS_PER_TICK = 10


@dataclass(frozen=True)
class WindowRequest:
    window_start_ms: int
    ranges: tuple[PartitionRange, ...]

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.ranges)


@dataclass(frozen=True)
class WindowPlan:
    requests: list[WindowRequest]
    cursor_ms: int | None  # start of the last window handled
    skip_reason: str | None = None


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def plan_windows(
    reader: OffsetReader,
    last_handled_ms: int | None,
    earliest_ms: int,
    now_ms: int,
    max_requests: int = MAX_REQUESTS_PER_TICK,
    grace_ms: int = WINDOW_CLOSE_GRACE_MS,
) -> WindowPlan:
    """Which closed windows after the cursor hold messages, with their offset ranges (at most
    `max_requests` per call, oldest first, so a long outage is caught up over several ticks)."""
    latest_closed = (now_ms - grace_ms) // WINDOW_MS * WINDOW_MS - WINDOW_MS
    t = earliest_ms // WINDOW_MS * WINDOW_MS if last_handled_ms is None else last_handled_ms + WINDOW_MS
    if t > latest_closed:
        return WindowPlan([], last_handled_ms, f"no new window has closed; the next closes at {_fmt(t + WINDOW_MS + grace_ms)}")

    high = {p: marks[1] for p, marks in reader.watermarks().items()}  # read before any time look-up
    start = reader.boundary(t, high)
    horizon_end = reader.boundary(latest_closed + WINDOW_MS, high)
    requests: list[WindowRequest] = []
    handled = last_handled_ms
    while t <= latest_closed and len(requests) < max_requests:
        if start == horizon_end:  # nothing in [t, latest closed end): skip those windows at once
            handled = latest_closed
            break
        t = _first_window_with_messages(reader, high, start, t, latest_closed)
        end = reader.boundary(t + WINDOW_MS, high)
        requests.append(WindowRequest(t, tuple(PartitionRange(p, start[p], end[p]) for p in sorted(start))))
        handled, start, t = t, end, t + WINDOW_MS
    if requests:
        return WindowPlan(requests, handled)
    if handled == last_handled_ms:
        return WindowPlan([], handled, "no closed window to handle")
    return WindowPlan([], handled, f"no messages in closed windows up to {_fmt(latest_closed + WINDOW_MS)}")


def _first_window_with_messages(
    reader: OffsetReader, high: dict[int, int], start: dict[int, int], lo: int, hi: int
) -> int:
    """Smallest window start in [lo, hi] whose end boundary moved past `start` (binary search;
    offsets at a boundary grow with time, and the window at `hi` is known to move)."""
    if reader.boundary(lo + WINDOW_MS, high) != start:
        return lo
    lo += WINDOW_MS
    while lo < hi:
        mid = lo + (hi - lo) // WINDOW_MS // 2 * WINDOW_MS
        if reader.boundary(mid + WINDOW_MS, high) != start:
            hi = mid
        else:
            lo = mid + WINDOW_MS
    return lo


@dg.sensor(
    job_name=BRONZE_LANDING_JOB,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one bronze landing run per closed 1-minute window of broker time on user-events.",
)
def user_events_window_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource) -> dg.SensorResult:
    earliest = int(minute_windows.start.timestamp() * 1000)
    cursor = window_start_ms(context.cursor) if context.cursor else None
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with kafka.offset_reader(USER_EVENTS) as reader:
        plan = plan_windows(reader, cursor, earliest, now_ms, MAX_REQUESTS_PER_TICK, WINDOW_CLOSE_GRACE_MS)
    new_cursor = window_key(plan.cursor_ms) if plan.cursor_ms is not None else None
    if plan.skip_reason:
        return dg.SensorResult(skip_reason=dg.SkipReason(plan.skip_reason), cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=window_key(r.window_start_ms),
                partition_key=window_key(r.window_start_ms),
                tags={TAG_KAFKA_TOPIC: USER_EVENTS, TAG_KAFKA_OFFSETS: ranges_to_json(r.ranges)},
            )
            for r in plan.requests
        ],
        cursor=new_cursor,
    )
