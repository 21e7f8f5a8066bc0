"""Per-user features of one day, as of a moment: the 7 x 24 hours of silver events up to that moment.

Plain Spark, no Dagster. The job is compiled from the feature registry (ml/features.py): the events of
the window get the helper columns the registry's aggregates read, then one GROUP BY user_id computes every
feature. One row per user active in the window; the day is replaced in one Delta commit.

The moment (`as_of`) is the end of the day once the day is over, so a closed day's features see exactly
its own 7 event days and nothing of D+1 (point in time). While the day is still open, it is the latest
event silver holds for the day: the window then trails by 7 x 24 hours (from D-7 at that hour of day),
so a feature means the same at 10:00 and at 23:59 ("events in the last 24 hours", "active days of the
last seven") and today's scores are drawn from the distribution the models were trained and their
thresholds chosen on (ml/README.md). Each row carries `as_of` and `history_days`: how much of the window
the data covers (under 7 on a deployment younger than a week; a model trained on such a day is not trusted
to alert).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from assets.delta import date_range_predicate, day_predicate, read_table, replace_where
from ml.features import FEATURES, WINDOW_DAYS

DAY = timedelta(days=1)


@dataclass(frozen=True)
class FeaturesResult:
    day: date
    as_of: datetime  # the end of the window (exclusive): the end of the day once it is over
    closed: bool  # as_of is the end of the day: the day's final features
    history_days: float  # days of the window the data covers (7.0: the whole window)
    users: int  # rows written, read back from the table
    active_users: int  # distinct users in the window of silver, counted apart from the feature job
    events: int
    seconds: float


def end_of(day: date) -> datetime:
    return datetime.combine(day + DAY, datetime.min.time(), UTC)


def window_days(day: date) -> tuple[date, date]:
    """The silver event days a window of `day` may read: D-7 (an open day's window starts there, at the
    hour of its as_of) to D."""
    return day - timedelta(days=WINDOW_DAYS), day


def as_of_for(day: date, latest_event: datetime | None, now: datetime) -> datetime:
    """Where the window of `day` ends: the end of the day once it is over; before that the latest event of
    the day silver holds (a millisecond past it), or the start of the day when it has none yet."""
    end = end_of(day)
    if now >= end:
        return end
    if latest_event is None:
        return end - DAY
    return min(end, latest_event + timedelta(milliseconds=1))


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def _datetime(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, UTC)


def window_events(silver: DataFrame, as_of: datetime) -> DataFrame:
    """Silver rows with event_time in [as_of - 7 days, as_of)."""
    start = as_of - WINDOW_DAYS * DAY
    micros = F.unix_micros("event_time")
    return silver.where((micros >= F.lit(_us(start))) & (micros < F.lit(_us(as_of))))


def prepared_events(window: DataFrame, as_of: datetime) -> DataFrame:
    """The window's events with the helper columns the registry's aggregates read: `is_day` (within the
    last 24 hours), `days_ago` (whole days before as_of, 0-6), `hour`, `minute_count`, `gap_s`."""
    per_user_time = Window.partitionBy("user_id").orderBy("event_time", "event_id")
    per_user_minute = Window.partitionBy("user_id", F.date_trunc("minute", "event_time"))
    before_us = F.lit(_us(as_of)) - F.unix_micros("event_time")
    return window.select(
        "user_id",
        "event_type",
        "session_id",
        "event_time",
        "event_date",
        "ip",
        "country",
        "device_id",
        "amount",
        "lon",
        (before_us <= F.lit(86_400_000_000)).alias("is_day"),
        F.floor((before_us - 1) / F.lit(86_400_000_000)).cast("int").alias("days_ago"),
        (F.hour("event_time") + F.minute("event_time") / 60.0 + F.second("event_time") / 3600.0).alias("hour"),
        F.count("*").over(per_user_minute).alias("minute_count"),
        (
            (F.unix_micros("event_time") - F.unix_micros(F.lag("event_time").over(per_user_time))) / 1e6
        ).alias("gap_s"),
    )


def features_of(silver: DataFrame, day: date, as_of: datetime | None = None, history_days: float = WINDOW_DAYS
                ) -> DataFrame:
    """One row per user active in the window of `day` ending at `as_of` (default: the end of the day):
    every registry feature, typed as declared, with `as_of` and `history_days`."""
    as_of = as_of or end_of(day)
    events = prepared_events(window_events(silver, as_of), as_of)
    aggregates = [F.expr(f.sql).cast("bigint" if f.dtype == "long" else "double").alias(f.name) for f in FEATURES]
    return events.groupBy("user_id").agg(*aggregates).select(
        F.lit(day).alias("feature_date"), "user_id", *(f.name for f in FEATURES),
        F.timestamp_micros(F.lit(_us(as_of))).alias("as_of"), F.lit(float(history_days)).alias("history_days"))


def build_features_day(spark: SparkSession, silver_path: str, features_path: str, day: date,
                       now: datetime | None = None) -> FeaturesResult:
    """Replace the features of `day` in the Delta table at `features_path`, as of the end of the day when
    it is over (`now`: default the wall clock), else as of the latest event of the day in silver."""
    started = time.perf_counter()
    first, last = window_days(day)
    silver = read_table(spark, silver_path, date_range_predicate(first, last, "event_date"))
    latest = silver.where(F.col("event_date") == F.lit(day)).agg(F.max(F.unix_micros("event_time")).alias("t")).first()["t"]
    as_of = as_of_for(day, _datetime(latest), now or datetime.now(UTC))
    window = window_events(silver, as_of)
    active = window.agg(F.count_distinct("user_id").alias("users"), F.count("*").alias("events"),
                        F.min(F.unix_micros("event_time")).alias("first")).first()
    first_event = _datetime(active["first"]) or as_of
    history = min(float(WINDOW_DAYS), round((as_of - first_event) / DAY, 4))
    # merge_schema: a table written before `as_of` and `history_days` existed takes them on its next day
    replace_where(features_of(silver, day, as_of, history), features_path, day_predicate(day, "feature_date"),
                  "feature_date", merge_schema=True)
    written = read_table(spark, features_path, day_predicate(day, "feature_date")).count()
    return FeaturesResult(day, as_of, as_of == end_of(day), history, written, active["users"], active["events"],
                          time.perf_counter() - started)


def closed_feature_days(features_path: str) -> list[date]:
    """The feature days whose features are final (as of the end of the day), oldest first, read with
    delta-rs; empty when the table does not exist yet."""
    import pandas as pd
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        frame = DeltaTable(features_path).to_pandas(columns=["feature_date", "as_of"])
    except TableNotFoundError:
        return []
    if frame.empty or "as_of" not in frame:
        return []
    days = frame.drop_duplicates()
    ends = pd.to_datetime(days["feature_date"]).dt.tz_localize(UTC) + pd.Timedelta(days=1)
    closed = days.loc[pd.to_datetime(days["as_of"], utc=True).to_numpy() == ends.to_numpy(), "feature_date"]
    return sorted({pd.Timestamp(d).date() for d in closed})
