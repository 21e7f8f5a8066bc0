"""Training without anyone asking: the models are trained on each closed day of features once it is final.

A day's features are final once the day is over and an hour of lateness has passed (the nightly close
rebuilds yesterday at 01:00 UTC; a day of history is final as soon as its features are built). For each of
the last TRAINING_DAYS closed days, oldest first, the sensor requests one `ml_training_job` run on that
day (run key `train-<day>`: each day is trained once; a failed run is not repeated, its message says
what was missing, and the UI re-executes it), one run at a time, so the second run compares its candidate
with the champion the first one made. On a deployment with a week of history that is two runs of each
model within its first hour, each with its promotion decision; afterwards, one run a night.

On a deployment without history, the first closed day is the day it started: trained after 01:00 UTC the
next morning on the users it saw (eligibility asks for no more active days than there are), and its model
raises no alert until one trained on a whole 7-day window is champion (ml/defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from analytics_defs.constants import (
    FEATURES_CLOSED_METADATA,
    ML_TRAINING_JOB,
    TAG_FEATURE_DATE,
    USER_FEATURES,
)

TRAINING_DAYS = 2  # the last closed days trained on: two runs of each model to compare from the first hour
LATENESS = timedelta(hours=1)  # a closed day's features are final this long after it ended (the nightly close)
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class TrainingPlan:
    day: date | None  # the day to train on now, if any
    reason: str  # why (or why not)


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)


def plan_training(now: datetime, final_at: dict[date, datetime | None], trained: dict[date, str],
                  in_flight: str | None) -> TrainingPlan:
    """The oldest of the last closed days whose features are final and which has no training run yet.

    `final_at`: per candidate day, when its closed features were last materialised (None: not yet);
    `trained`: the days with a training run, and that run's status; `in_flight`: the day a training run is
    queued or running for (nothing is requested meanwhile)."""
    if in_flight is not None:
        return TrainingPlan(None, f"training on {in_flight} is queued or running")
    waiting = []
    for day in sorted(final_at):
        if day in trained:
            continue
        built = final_at[day]
        if built is None:
            waiting.append(f"{day}: its closed features are not built yet")
        elif built < end_of(day) + LATENESS:
            waiting.append(f"{day}: waiting for the nightly close (features final after {end_of(day) + LATENESS:%Y-%m-%d %H:%M} UTC)")
        else:
            return TrainingPlan(day, f"features of {day} are final and no model was trained on them")
    if waiting:
        return TrainingPlan(None, "; ".join(waiting))
    if trained:
        latest = max(trained)
        return TrainingPlan(None, f"trained on every recent closed day (latest {latest}: {trained[latest]}); "
                            f"next: {now.date()} after {end_of(now.date()) + LATENESS:%Y-%m-%d %H:%M} UTC")
    return TrainingPlan(None, "no closed day of features yet")


def _final_at(instance: dg.DagsterInstance, day: date) -> datetime | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=USER_FEATURES, asset_partitions=[day.isoformat()]), limit=1).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    closed = materialization.metadata.get(FEATURES_CLOSED_METADATA) if materialization else None
    if closed is None or not closed.value:
        return None
    return datetime.fromtimestamp(records[0].timestamp, UTC)


@dg.sensor(
    job_name=ML_TRAINING_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Trains both models on each of the last two closed days once its features are final "
    "(oldest first, one run at a time, each day once): the first hour of a deployment with history, then "
    "every night after the close.",
)
def model_training_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    now = datetime.now(UTC)
    days = [now.date() - timedelta(days=k) for k in range(TRAINING_DAYS, 0, -1)]
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=ML_TRAINING_JOB,
                                                   created_after=now - timedelta(days=TRAINING_DAYS + 1)))
    trained, in_flight = {}, None
    for run in runs:  # newest first
        tagged = run.tags.get(TAG_FEATURE_DATE)
        if tagged is None:
            continue
        if run.status in IN_FLIGHT:
            in_flight = tagged
        trained.setdefault(date.fromisoformat(tagged), run.status.value.lower())
    plan = plan_training(now, {day: _final_at(instance, day) for day in days}, trained, in_flight)
    if plan.day is None:
        return dg.SensorResult(skip_reason=dg.SkipReason(plan.reason))
    day = plan.day.isoformat()
    config = {"config": {"feature_date": day}}
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"train-{day}", tags={TAG_FEATURE_DATE: day},
        run_config={"ops": {"segmentation_model": config, "anomaly_model": config}})])
