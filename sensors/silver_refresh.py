"""The silver refresh: silver days to rebuild, found from what bronze landed.

Every bronze run records the event dates of the rows it landed (`event_dates` metadata). This sensor
reads the bronze materialisations after its cursor, collects those dates and requests a silver run per
date, so late and replayed events reach their own day, and nothing else is recomputed. Features and the
SQL models of the refreshed days follow by their automation conditions.

Rate limits, so refreshes never pile up: a date with a silver run queued or running waits (and is kept);
a date refreshed less than SILVER_REFRESH_INTERVAL_S ago waits (today's silver is refreshed at most that
often while events keep arriving); while landing runs are queued (a backlog: history or a replay
still arriving), dates before today wait for the rest of their rows instead of being rebuilt once per
window; at most MAX_REQUESTS_PER_TICK dates per tick, oldest first. A date outside the event-day
partitions (older than the lookback) is dropped and reported (bronze counts it too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import dagster as dg

from analytics_defs.constants import (
    BRONZE_LANDING_JOB,
    BRONZE_USER_EVENTS,
    EVENT_DATES_METADATA,
    SILVER_REFRESH_JOB,
)
from analytics_defs.partitions import event_days
from settings import current

MAX_REQUESTS_PER_TICK = 4
MATERIALIZATIONS_PER_TICK = 1000
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


@dataclass
class RefreshCursor:
    after_storage_id: int | None = None  # last bronze materialisation read
    pending: list[str] = field(default_factory=list)  # dates waiting for a refresh
    requested_at: dict[str, float] = field(default_factory=dict)  # date -> when its last refresh was requested

    @classmethod
    def parse(cls, raw: str | None) -> RefreshCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"after_storage_id": self.after_storage_id, "pending": sorted(self.pending),
                           "requested_at": self.requested_at}, separators=(",", ":"))


@dataclass(frozen=True)
class RefreshPlan:
    requests: list[str]
    waiting: list[str]
    dropped: list[str]


def plan_refreshes(
    pending: set[str],
    valid: set[str],
    in_flight: set[str],
    requested_at: dict[str, float],
    now: float,
    interval_s: float,
    max_requests: int = MAX_REQUESTS_PER_TICK,
    backlog_before: str | None = None,
) -> RefreshPlan:
    """Which pending dates to refresh now (oldest first), which wait, which are outside the partitions.
    `backlog_before`: landing runs are queued, so dates before this one (today) wait for the rest."""
    dropped = sorted(d for d in pending if d not in valid)
    requests, waiting = [], []
    for day in sorted(pending - set(dropped)):
        if (day in in_flight or now - requested_at.get(day, float("-inf")) < interval_s
                or len(requests) >= max_requests or (backlog_before is not None and day < backlog_before)):
            waiting.append(day)
        else:
            requests.append(day)
    return RefreshPlan(requests, waiting, dropped)


def touched_dates(records) -> tuple[set[str], int | None]:
    """Event dates named by bronze materialisation records, and the last storage id read."""
    dates, last = set(), None
    for record in records:
        last = record.storage_id
        value = record.asset_materialization.metadata.get(EVENT_DATES_METADATA) if record.asset_materialization else None
        if value is not None:
            dates.update(value.value)
    return dates, last


@dg.sensor(
    job_name=SILVER_REFRESH_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a silver run for every event date bronze landed rows of (late events included), "
    "at most once per SILVER_REFRESH_INTERVAL_S per date and never while one runs.",
)
def silver_refresh_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = RefreshCursor.parse(context.cursor)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BRONZE_USER_EVENTS, after_storage_id=cursor.after_storage_id),
        limit=MATERIALIZATIONS_PER_TICK,
        ascending=True,
    ).records
    dates, last = touched_dates(records)
    if last is not None:
        cursor.after_storage_id = last
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=SILVER_REFRESH_JOB, statuses=IN_FLIGHT))
    in_flight = {run.tags.get("dagster/partition") for run in runs}
    now = time.time()
    queued = context.instance.get_runs_count(filters=dg.RunsFilter(job_name=BRONZE_LANDING_JOB,
                                                                   statuses=[dg.DagsterRunStatus.QUEUED]))
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    plan = plan_refreshes(set(cursor.pending) | dates, set(event_days.get_partition_keys()), in_flight,
                          cursor.requested_at, now, current().silver_refresh_interval_s,
                          backlog_before=today if queued else None)
    if plan.dropped:
        context.log.warning(f"bronze landed events of dates outside the event-day partitions: {plan.dropped}; "
                            "set LAKEHOUSE_EVENT_LOOKBACK_DAYS (or LAKEHOUSE_PARTITIONS_START) to include them")
    for day in plan.requests:
        cursor.requested_at[day] = now
    cursor.pending = plan.waiting
    # forget refresh times of days no longer pending (bounded cursor)
    cursor.requested_at = {d: t for d, t in cursor.requested_at.items() if now - t < 2 * 86_400}
    requests = [dg.RunRequest(run_key=f"silver-{day}-{int(now)}", partition_key=day) for day in plan.requests]
    if not requests:
        reason = f"{len(plan.waiting)} dates waiting" if plan.waiting else "no new bronze landings"
        if queued and plan.waiting:
            reason += f" ({queued} landing runs queued: days before today wait for the rest of their rows)"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
