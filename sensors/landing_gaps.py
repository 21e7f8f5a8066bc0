"""Windows that no run landed: requested again, so a crash never leaves a window forgotten.

A landing run can fail for good (its retries exhausted while Spark, Kafka or PostgreSQL was down, or it
was stopped past its maximum runtime). Every minute this sensor looks at the failed and cancelled
landing runs of the last LOOKBACK_HOURS: a window that has no materialisation and no landing run queued
or running is requested again, oldest first, at most MAX_REQUESTS_PER_TICK per tick. The run computes
the window's offsets from Kafka (the window is closed), so it lands exactly what the first would have.
The run key names the failed run, so each failure is answered once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from analytics_defs.constants import BRONZE_LANDING_JOB, BRONZE_USER_EVENTS

LOOKBACK_HOURS = 6
MAX_REQUESTS_PER_TICK = 5
PARTITION_TAG = "dagster/partition"
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


def gaps(failed: dict[str, str], landed: set[str], in_flight: set[str], limit: int) -> list[tuple[str, str]]:
    """(window, failed run id) of the windows to request again, oldest first."""
    return [(w, run) for w, run in sorted(failed.items()) if w not in landed and w not in in_flight][:limit]


@dg.sensor(
    job_name=BRONZE_LANDING_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests again every window whose landing failed for good and that nothing has landed since.",
)
def landing_gaps_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    since = datetime.now(UTC) - timedelta(hours=LOOKBACK_HOURS)
    failed_runs = instance.get_runs(filters=dg.RunsFilter(
        job_name=BRONZE_LANDING_JOB, statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        created_after=since))
    failed = {}
    for run in failed_runs:  # newest first: keep the latest failure per window
        key = run.tags.get(PARTITION_TAG)
        if key and key not in failed:
            failed[key] = run.run_id
    if not failed:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"no failed landing in the last {LOOKBACK_HOURS} h"))
    in_flight = {r.tags.get(PARTITION_TAG) for r in instance.get_runs(
        filters=dg.RunsFilter(job_name=BRONZE_LANDING_JOB, statuses=IN_FLIGHT))}
    landed = instance.get_materialized_partitions(BRONZE_USER_EVENTS)
    todo = gaps(failed, landed, in_flight, MAX_REQUESTS_PER_TICK)
    if not todo:
        return dg.SensorResult(skip_reason=dg.SkipReason("every failed window has landed since, or is running"))
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=f"{window}:after:{run_id}", partition_key=window, tags={"lakehouse/retry_of": run_id})
        for window, run_id in todo
    ])
