"""What the dashboard tests and benchmarks put in place: alerts, landed windows, segments and model metrics
in PostgreSQL (written with the owner's login, as the platform's writers do), events on `user-events`, a
quarantine Delta table, and a committed offset of the alert loader's group."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from alerts.loader import GROUP_ID as ALERT_LOADER_GROUP
from contract.alerts import alert_id as make_alert_id
from contract.topics import SECURITY_ALERTS, USER_EVENTS
from resources.kafka import KafkaResource

RULES = (("brute_force", "HIGH"), ("account_takeover", "CRITICAL"), ("rapid_activity", "MEDIUM"),
         ("credential_stuffing", "HIGH"))
ALERT_COLUMNS = ("alert_id", "rule", "severity", "source", "user_id", "ip", "window_start", "window_end",
                 "event_count", "evidence_event_ids", "trigger_event_id", "trigger_event_ts", "detected_at", "details")


def alert_row(rule: str = "brute_force", severity: str = "HIGH", user_id: str | None = None,
              detected_at: datetime | None = None, source: str = "flink_cep") -> tuple:
    detected_at = detected_at or datetime.now(UTC)
    evidence = [str(uuid.uuid4()) for _ in range(5)]
    user_id = user_id or f"u-{uuid.uuid4().int % 10**6:06d}"
    return (make_alert_id(rule, user_id, evidence), rule, severity, source, user_id, "203.0.113.7",
            detected_at - timedelta(seconds=40), detected_at - timedelta(seconds=1), len(evidence), evidence,
            evidence[-1], detected_at - timedelta(milliseconds=300), detected_at, Jsonb({"failures": "5"}))


def insert_alerts(url: str, rows: list[tuple]) -> datetime:
    """Insert and commit; returns the commit time (UTC)."""
    placeholders = ", ".join(["%s"] * len(ALERT_COLUMNS))
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            f"INSERT INTO security_alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({placeholders}) "
            "ON CONFLICT (alert_id) DO NOTHING", rows)
        conn.commit()
        return datetime.now(UTC)


def seed_alerts(url: str, count: int, now: datetime | None = None) -> list[tuple]:
    """`count` alerts spread over the last 50 minutes, one user per 10 alerts, rules in turn."""
    now = now or datetime.now(UTC)
    rows = []
    for i in range(count):
        rule, severity = RULES[i % len(RULES)]
        rows.append(alert_row(rule, severity, user_id=f"u-{i // 10:06d}",
                              detected_at=now - timedelta(seconds=3000 * (i + 1) / (count + 1))))
    insert_alerts(url, rows)
    return rows


def seed_tables(url: str, now: datetime | None = None) -> None:
    """Ten landed windows, one scoring of a segmentation model with its metrics."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    with psycopg.connect(url) as conn:
        for k in range(10):
            start = now - timedelta(minutes=10 - k)
            conn.execute(
                "INSERT INTO streaming_performance (pipeline, window_start, rows_in, rows_out, rows_quarantined, "
                "seconds, rows_per_second, freshness_seconds, dagster_run_id) VALUES "
                "('bronze_user_events', %s, 12000, 11988, 12, 4.2, 2857.1, %s, %s) ON CONFLICT DO NOTHING",
                (start, 40.0 + k, f"run-{k}"))
        for user in range(100):
            conn.execute(
                "INSERT INTO user_segments (user_id, scored_date, segment_id, segment_name, model_name, model_version, "
                "distance_to_centroid) VALUES (%s, %s, %s, %s, 'user_segmentation', '3', %s) ON CONFLICT DO NOTHING",
                (f"u-{user:06d}", now.date(), user % 4, ["browsers", "buyers", "night owls", "new users"][user % 4],
                 0.1 * (user % 7)))
        conn.execute(
            "INSERT INTO ml_model_metrics (model_name, model_version, metric, value) VALUES "
            "('user_segmentation', '3', 'silhouette', 0.41), ('user_segmentation', '3', 'inertia', 1234.5) "
            "ON CONFLICT DO NOTHING")
        conn.commit()


def produce_events(bootstrap: str, count: int) -> None:
    producer = KafkaResource(bootstrap_servers=bootstrap).producer()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for i in range(count):
        event = {"event_id": str(uuid.uuid4()), "event_type": "PAGE_VIEW", "user_id": f"u-{i % 50:06d}",
                 "occurred_at": now_ms, "schema_version": 1}
        producer.produce(USER_EVENTS, key=event["user_id"].encode(), value=json.dumps(event).encode())
    producer.produce(SECURITY_ALERTS, key=b"x", value=b"{}")
    assert producer.flush(30) == 0


def commit_alert_loader_offset(bootstrap: str) -> None:
    """The alert loader's group commits offset 0 on security-alerts: a lag of what the topic holds."""
    from confluent_kafka import TopicPartition

    consumer = KafkaResource(bootstrap_servers=bootstrap).consumer(ALERT_LOADER_GROUP)
    try:
        consumer.commit(offsets=[TopicPartition(SECURITY_ALERTS, 0, 0)], asynchronous=False)
    finally:
        consumer.close()


def write_quarantine(table_path: str, now: datetime | None = None) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    window = (now or datetime.now(UTC)).replace(second=0, microsecond=0) - timedelta(minutes=5)
    reasons = ["invalid_json"] * 6 + ["missing_field:user_id"] * 3 + ["future_timestamp"]
    table = pa.table({"window_start": pa.array([window] * len(reasons), pa.timestamp("us", "UTC")),
                      "reason": pa.array(reasons, pa.string())})
    write_deltalake(table_path, table, mode="append")
