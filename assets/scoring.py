"""Serving: each features day scored by the champions, published to PostgreSQL and Kafka.

- `user_segments`: the segment of every eligible user (PostgreSQL `user_segments`, upserted on
  (user_id, scored_date) with COPY into a staging table and one INSERT … ON CONFLICT in a transaction),
  and on `analytics-insights` one message per user who moved segment plus one summary per scoring
  (schema: ml/README.md).
- `behavior_anomaly_scores`: the anomaly score of every eligible user (PostgreSQL `user_anomaly_scores`,
  same upsert), and on `security-alerts` one alert per user at or above the deployed threshold within the
  day's budget (at most alert_share of the eligible users, highest scores first, counted over every
  scoring of the day; none while the champion is on probation) (source `ml_anomaly`, rule
  `behavior_anomaly`, severity from the score, the features that stood out as evidence); the alert loader
  stores them with the CEP alerts, deduplicated by their deterministic id. Each scoring adds a row to
  `ml_scoring_runs` (budget, capped, trusted), which the dashboard shows.

A rerun of a day upserts the same keys and re-sends the same alert ids: it changes nothing.
"""


import time
from datetime import timedelta

import dagster as dg
import pandas as pd

from analytics_defs.automation import refresh_on_upstream_update
from analytics_defs.constants import (
    ANOMALY_CHAMPION,
    BEHAVIOR_ANOMALY_SCORES,
    SEGMENTATION_CHAMPION,
    USER_FEATURES,
    USER_FEATURES_TABLE,
    USER_SEGMENTS,
)
from analytics_defs.partitions import day_of, event_days
from assets.delta import read_day
from contract.topics import ANALYTICS_INSIGHTS, SECURITY_ALERTS
from ml.defaults import ANOMALY_MODEL, SEGMENTATION_MODEL
from resources.kafka import KafkaResource
from resources.mlflow import MLflowResource
from resources.postgres import PostgresResource
from resources.warehouse import WarehouseResource

# Score the latest two days on their own when features or a champion change; older days by backfill.
SCORE_AUTOMATION = (
    refresh_on_upstream_update()
    & ~dg.AutomationCondition.any_deps_missing()
    & dg.AutomationCondition.in_latest_time_window(timedelta(days=2))
).with_label("score recent days on upstream update")


def _publish(kafka: KafkaResource, topic: str, messages: list[tuple[bytes, bytes]]) -> int:
    if not messages:
        return 0
    producer = kafka.producer()
    for key, value in messages:
        producer.produce(topic, value=value, key=key)
    if producer.flush(60):
        raise dg.Failure(f"{topic}: not every message was acknowledged within 60 s; the run can be retried "
                         "(message keys are deterministic, consumers deduplicate)")
    return len(messages)


def _champion(loader: str, uri: str, name: str):
    from ml import tracking

    model = getattr(tracking, loader)(uri)
    if model is None:
        raise dg.Failure(f"no champion of {name} yet: materialize the training assets (job ml_training_job)")
    return model


@dg.asset(
    key=USER_SEGMENTS,
    description="Current segment of every eligible user per day (PostgreSQL user_segments), scored with "
    "models:/user_segments_kmeans@champion; segment changes go to the analytics-insights topic.",
    group_name="serving",
    kinds={"postgres", "kafka"},
    partitions_def=event_days,
    deps=[USER_FEATURES, SEGMENTATION_CHAMPION],
    automation_condition=SCORE_AUTOMATION,
)
def user_segments(context: dg.AssetExecutionContext, mlflow: MLflowResource, warehouse: WarehouseResource,
                  postgres: PostgresResource, kafka: KafkaResource) -> dg.MaterializeResult:
    from ml import scoring

    day = day_of(context.partition_key)
    model = _champion("load_segmentation", mlflow.tracking_uri, SEGMENTATION_MODEL)
    rows = scoring.score_segments(model, read_day(warehouse.table_path(USER_FEATURES_TABLE), "feature_date", day), day)
    with postgres.connection() as conn:
        previous = pd.DataFrame(conn.execute(scoring.PREVIOUS_SEGMENTS_SQL,
                                             {"scored_date": day, "model_name": SEGMENTATION_MODEL}).fetchall(),
                                columns=list(scoring.USER_SEGMENT_COLUMNS))
    upserted = postgres.bulk_upsert(scoring.USER_SEGMENTS_TABLE, scoring.USER_SEGMENT_COLUMNS,
                                    scoring.table_rows(rows, scoring.USER_SEGMENT_COLUMNS), scoring.USER_SEGMENT_KEY)
    insights = scoring.segment_change_insights(previous, rows, int(time.time() * 1000))
    sent = _publish(kafka, ANALYTICS_INSIGHTS,
                    [(scoring.insight_key(m), scoring.message_value(m)) for m in insights])
    sizes = rows.groupby("segment_name").size().to_dict() if len(rows) else {}
    return dg.MaterializeResult(metadata={
        "users_scored": len(rows), "rows_upserted": upserted, "model_version": model.version,
        "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
        "insights_sent": sent,
    })


@dg.asset(
    key=BEHAVIOR_ANOMALY_SCORES,
    description="Anomaly score of every eligible user per day (PostgreSQL user_anomaly_scores), scored with "
    "models:/user_anomaly_iforest@champion; users at or above the deployed threshold become behavior_anomaly "
    "alerts on the security-alerts topic (stored by the alert loader), at most alert_share of the day's "
    "eligible users over all its scorings, and none from a model on probation.",
    group_name="serving",
    kinds={"postgres", "kafka"},
    partitions_def=event_days,
    deps=[USER_FEATURES, ANOMALY_CHAMPION],
    automation_condition=SCORE_AUTOMATION,
)
def behavior_anomaly_scores(context: dg.AssetExecutionContext, mlflow: MLflowResource,
                            warehouse: WarehouseResource, postgres: PostgresResource,
                            kafka: KafkaResource) -> dg.MaterializeResult:
    from ml import scoring

    day = day_of(context.partition_key)
    model = _champion("load_anomaly", mlflow.tracking_uri, ANOMALY_MODEL)
    features = read_day(warehouse.table_path(USER_FEATURES_TABLE), "feature_date", day)
    scores = scoring.score_anomalies(model, features, day)
    with postgres.connection() as conn:
        before = {row[0] for row in conn.execute(scoring.ALERTED_USERS_SQL,
                                                 {"scored_date": day, "model_name": ANOMALY_MODEL}).fetchall()}
    scores, budget = scoring.alerts_within_budget(scores, before, model.threshold.alert_share, model.trusted,
                                                  model.history_days)
    upserted = postgres.bulk_upsert(scoring.ANOMALY_SCORES_TABLE, scoring.ANOMALY_SCORE_COLUMNS,
                                    scoring.table_rows(scores, scoring.ANOMALY_SCORE_COLUMNS), scoring.ANOMALY_SCORE_KEY)
    alerts = scoring.anomaly_alerts(scores, day, int(time.time() * 1000))
    sent = _publish(kafka, SECURITY_ALERTS, [(a["alert_id"].encode(), scoring.message_value(a)) for a in alerts])
    with postgres.connection() as conn:
        conn.execute(scoring.SCORING_RUN_SQL, scoring.scoring_run_row(budget, day, model, features, context.run_id))
    if budget.capped:
        context.log.warning(budget.reason)
    return dg.MaterializeResult(metadata={
        "users_scored": len(scores), "rows_upserted": upserted, "model_version": model.version,
        "threshold": float(model.threshold.chosen), "alerts_sent": sent,
        "max_score": float(scores["score"].max()) if len(scores) else 0.0,
        **budget.as_metadata(),
    })
