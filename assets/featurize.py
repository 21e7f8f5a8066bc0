"""Per-user features of one day, point in time: day D sees only the silver events of the 7 days up to
and including D (silver is partitioned by event date, so no event of D+1 can reach D's features).

Plain Spark, no Dagster. The job is compiled from the feature registry (ml/features.py): the 7 days of
events get the helper columns the registry's aggregates read, then one GROUP BY user_id computes every
feature. One row per user active in the 7 days; the day is replaced in one Delta commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from assets.delta import date_range_predicate, day_predicate, read_table, replace_where
from ml.features import FEATURES, WINDOW_DAYS


@dataclass(frozen=True)
class FeaturesResult:
    day: date
    users: int  # rows written, read back from the table
    active_users: int  # distinct users in the 7 days of silver, counted apart from the feature job
    events: int
    seconds: float


def window_of(day: date) -> tuple[date, date]:
    """First and last event day of the features of `day`."""
    return day - timedelta(days=WINDOW_DAYS - 1), day


def prepared_events(silver: DataFrame, day: date) -> DataFrame:
    """The 7 days of events with the helper columns the registry's aggregates read."""
    per_user_time = Window.partitionBy("user_id").orderBy("event_time", "event_id")
    per_user_minute = Window.partitionBy("user_id", F.date_trunc("minute", "event_time"))
    return silver.select(
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
        (F.col("event_date") == F.lit(day)).alias("is_day"),
        (F.hour("event_time") + F.minute("event_time") / 60.0 + F.second("event_time") / 3600.0).alias("hour"),
        F.count("*").over(per_user_minute).alias("minute_count"),
        (
            (F.unix_micros("event_time") - F.unix_micros(F.lag("event_time").over(per_user_time))) / 1e6
        ).alias("gap_s"),
    )


def features_of(silver: DataFrame, day: date) -> DataFrame:
    """One row per user active in the 7 days up to `day`: every registry feature, typed as declared."""
    events = prepared_events(silver, day)
    aggregates = [F.expr(f.sql).cast("bigint" if f.dtype == "long" else "double").alias(f.name) for f in FEATURES]
    return events.groupBy("user_id").agg(*aggregates).select(F.lit(day).alias("feature_date"), "user_id",
                                                              *(f.name for f in FEATURES))


def build_features_day(spark: SparkSession, silver_path: str, features_path: str, day: date) -> FeaturesResult:
    """Replace the features of `day` in the Delta table at `features_path`."""
    started = time.perf_counter()
    first, last = window_of(day)
    silver = read_table(spark, silver_path, date_range_predicate(first, last, "event_date"))
    replace_where(features_of(silver, day), features_path, day_predicate(day, "feature_date"), "feature_date")
    active = silver.agg(F.count_distinct("user_id").alias("users"), F.count("*").alias("events")).first()
    written = read_table(spark, features_path, day_predicate(day, "feature_date")).count()
    return FeaturesResult(day, written, active["users"], active["events"], time.perf_counter() - started)
