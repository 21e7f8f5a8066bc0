"""ml/scoring.py rows in the real tables: user_segments and user_anomaly_scores (migration 0004) take them
through resources.postgres.copy_upsert, a rerun of the day changes nothing, ML alerts are stored by the
alert loader's store(), and PREVIOUS_SEGMENTS_SQL reads what segment_change_insights compares with."""

from datetime import date

import pandas as pd
import psycopg
import pytest

from alerts.loader import alert_row, store
from bench.ml_data import synthetic_features
from ml.anomaly import train_anomaly
from ml.scoring import (
    ANOMALY_SCORE_COLUMNS,
    ANOMALY_SCORE_KEY,
    ANOMALY_SCORES_TABLE,
    INSIGHT_SEGMENT_SUMMARY,
    PREVIOUS_SEGMENTS_SQL,
    USER_SEGMENT_COLUMNS,
    USER_SEGMENT_KEY,
    USER_SEGMENTS_TABLE,
    alerts_within_budget,
    anomaly_alerts,
    message_value,
    score_anomalies,
    score_segments,
    segment_change_insights,
    table_rows,
)
from ml.segmentation import train_segmentation
from resources.postgres import copy_upsert

pytestmark = pytest.mark.integration

DAY1, DAY2 = date(2031, 1, 1), date(2031, 1, 2)  # days no other test writes
MODEL_NAME = "it_publish_kmeans"  # the previous-segment lookup must not see the rows of other tests' models


def _snapshot(conn, table: str, day: date) -> list[tuple]:
    """Every column but updated_at, the table's own."""
    columns = [c for (c,) in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                                          "AND column_name <> 'updated_at' ORDER BY ordinal_position", (table,))]
    return conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE scored_date = %s ORDER BY user_id",
                        (day,)).fetchall()


def test_scored_rows_are_upserted_idempotently_and_insights_read_the_previous_day(postgres_url):
    day1 = synthetic_features(1500, seed=31, drift_share=0.02, feature_date=DAY1)
    day2 = synthetic_features(1500, seed=32, drift_share=0.02, feature_date=DAY2)
    segmenter, detector = train_segmentation(day1.features), train_anomaly(day1.features)
    segmenter.version, detector.version = "1", "1"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for day, run in ((DAY1, day1), (DAY2, day2)):
            segments = score_segments(segmenter, run.features, day, model_name=MODEL_NAME)
            previous = pd.DataFrame(conn.execute(PREVIOUS_SEGMENTS_SQL, {"scored_date": day,
                                                                         "model_name": MODEL_NAME}).fetchall(),
                                    columns=list(USER_SEGMENT_COLUMNS))
            insights = segment_change_insights(previous, segments, produced_at_ms=1)
            written = copy_upsert(conn, USER_SEGMENTS_TABLE, USER_SEGMENT_COLUMNS,
                                  table_rows(segments, USER_SEGMENT_COLUMNS), USER_SEGMENT_KEY)
            assert written == len(segments)
            summary = insights[-1]
            assert summary["type"] == INSIGHT_SEGMENT_SUMMARY and summary["users_scored"] == len(segments)
            if day == DAY1:
                assert previous.empty and summary["users_new"] == len(segments) and len(insights) == 1
            else:
                # the same user ids on both days, other behaviour drawn: some move, all have a previous row
                assert set(previous["scored_date"]) == {DAY1}
                assert summary["users_moved"] == len(insights) - 1 > 0
                assert summary["users_new"] == len(set(segments["user_id"]) - set(previous["user_id"]))

        scores = score_anomalies(detector, day2.features, DAY2)
        rows = table_rows(scores, ANOMALY_SCORE_COLUMNS)
        assert copy_upsert(conn, ANOMALY_SCORES_TABLE, ANOMALY_SCORE_COLUMNS, rows, ANOMALY_SCORE_KEY) == len(rows)
        stored = conn.execute(f"SELECT count(*), count(*) FILTER (WHERE is_anomaly), max(score) FROM "
                              f"{ANOMALY_SCORES_TABLE} WHERE scored_date = %s", (DAY2,)).fetchone()
        assert stored[0] == len(scores) and stored[1] == int(scores["is_anomaly"].sum()) > 0
        assert stored[2] == pytest.approx(scores["score"].max())
        top = conn.execute(f"SELECT top_features, severity FROM {ANOMALY_SCORES_TABLE} WHERE scored_date = %s "
                           "ORDER BY score DESC LIMIT 1", (DAY2,)).fetchone()
        assert isinstance(top[0], list) and top[0] and top[1] in {"LOW", "MEDIUM", "HIGH", "CRITICAL"}

        # a rerun of the day: same keys, same values
        before = _snapshot(conn, ANOMALY_SCORES_TABLE, DAY2), _snapshot(conn, USER_SEGMENTS_TABLE, DAY2)
        copy_upsert(conn, ANOMALY_SCORES_TABLE, ANOMALY_SCORE_COLUMNS,
                    table_rows(score_anomalies(detector, day2.features, DAY2), ANOMALY_SCORE_COLUMNS), ANOMALY_SCORE_KEY)
        copy_upsert(conn, USER_SEGMENTS_TABLE, USER_SEGMENT_COLUMNS,
                    table_rows(score_segments(segmenter, day2.features, DAY2, model_name=MODEL_NAME), USER_SEGMENT_COLUMNS), USER_SEGMENT_KEY)
        after = _snapshot(conn, ANOMALY_SCORES_TABLE, DAY2), _snapshot(conn, USER_SEGMENTS_TABLE, DAY2)
        for rows_before, rows_after in zip(before, after, strict=True):
            assert rows_after == rows_before and rows_before

        alerted, _ = alerts_within_budget(scores, set(), detector.threshold.alert_share, trusted=True)
        alerts = anomaly_alerts(alerted, DAY2, detected_at_ms=1_924_000_000_000)
        assert alerts
        assert store(conn, [alert_row(message_value(a)) for a in alerts]) == len(alerts)
        assert store(conn, [alert_row(message_value(a)) for a in alerts]) == 0  # redelivered: stored once
        kept = conn.execute("SELECT count(*), min(source), min(rule) FROM security_alerts WHERE alert_id = ANY(%s)",
                            ([a["alert_id"] for a in alerts],)).fetchone()
        assert kept == (len(alerts), "ml_anomaly", "behavior_anomaly")
