"""The tables the pipeline publishes for consumers: landed windows (`streaming_performance`), user
segments (`user_segments`), model metrics (`ml_model_metrics`), the anomaly champion's scorings
(`ml_scoring_runs`) and valid events of dates silver has no day for (`events_outside_partitions`)."""

from __future__ import annotations

from datetime import datetime

from dashboard.sources.database import Database

BRONZE_PIPELINE = "bronze_user_events"


async def landed_windows(db: Database, limit: int = 30) -> list[dict]:
    """The last landed windows of bronze, newest first."""
    return await db.rows(
        "SELECT window_start, rows_in, rows_out, rows_quarantined, seconds, rows_per_second, freshness_seconds, "
        "recorded_at FROM streaming_performance WHERE pipeline = %s ORDER BY window_start DESC LIMIT %s",
        [BRONZE_PIPELINE, limit])


async def landed_since(db: Database, since: datetime) -> dict:
    """Messages and quarantined rows of the windows landed since `since`."""
    rows = await db.rows(
        "SELECT count(*) AS windows, coalesce(sum(rows_in), 0) AS rows_in, "
        "coalesce(sum(rows_quarantined), 0) AS rows_quarantined FROM streaming_performance "
        "WHERE pipeline = %s AND window_start >= %s", [BRONZE_PIPELINE, since])
    return rows[0]


async def latest_segments(db: Database) -> tuple[dict | None, list[dict]]:
    """The most recent scoring (model, version, date) and its segment sizes."""
    latest = await db.rows(
        "SELECT model_name, model_version, scored_date, max(updated_at) AS scored_at FROM user_segments "
        "WHERE scored_date = (SELECT max(scored_date) FROM user_segments) "
        "GROUP BY model_name, model_version, scored_date ORDER BY max(updated_at) DESC LIMIT 1")
    if not latest:
        return None, []
    run = latest[0]
    segments = await db.rows(
        "SELECT segment_id, max(segment_name) AS segment_name, count(*) AS users, "
        "avg(distance_to_centroid) AS mean_distance_to_centroid FROM user_segments "
        "WHERE scored_date = %s AND model_name = %s AND model_version = %s "
        "GROUP BY segment_id ORDER BY segment_id",
        [run["scored_date"], run["model_name"], run["model_version"]])
    return run, segments


async def model_metrics(db: Database, model_name: str, model_version: str) -> list[dict]:
    return await db.rows(
        "SELECT metric, value FROM ml_model_metrics WHERE model_name = %s AND model_version = %s ORDER BY metric",
        [model_name, model_version])


async def latest_anomaly_scoring(db: Database) -> dict | None:
    """The last scoring of a day by the anomaly champion: its alert budget and whether it may alert."""
    rows = await db.rows(
        "SELECT scored_date, scored_at, model_name, model_version, as_of, trusted, history_days, eligible_users, "
        "past_threshold, alerted_users, new_alerts, budget, capped, threshold FROM ml_scoring_runs "
        "ORDER BY scored_at DESC LIMIT 1")
    return rows[0] if rows else None


async def events_outside_partitions(db: Database, limit: int = 20) -> list[dict]:
    """Valid events in bronze per event date before the first event day (in no silver day), newest first."""
    return await db.rows(
        "SELECT event_date, sum(rows) AS rows, max(recorded_at) AS last_seen FROM events_outside_partitions "
        "GROUP BY event_date ORDER BY event_date DESC LIMIT %s", [limit])
