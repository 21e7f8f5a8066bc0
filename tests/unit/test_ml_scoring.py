"""ml/scoring.py: user_segments and anomaly-score rows, ML alerts that the alert loader accepts, and
segment-change insights."""

import json
import re
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from alerts.loader import COLUMNS as LOADER_COLUMNS
from alerts.loader import alert_row
from bench.ml_data import synthetic_features
from contract.alerts import ALERT_FIELDS, SOURCE_ML_ANOMALY, Severity, alert_id
from ml.anomaly import train_anomaly
from ml.matrix import eligible
from ml.scoring import (
    ANOMALY_SCORE_COLUMNS,
    INSIGHT_SEGMENT_CHANGE,
    INSIGHT_SEGMENT_SUMMARY,
    SCORING_RUN_COLUMNS,
    USER_SEGMENT_COLUMNS,
    alerts_within_budget,
    anomaly_alerts,
    insight_key,
    message_value,
    score_anomalies,
    score_segments,
    segment_change_insights,
    table_rows,
    window_ms,
)
from ml.segmentation import train_segmentation
from settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 26)
DETECTED = 1_764_200_000_000


@pytest.fixture(scope="module")
def run():
    return synthetic_features(2500, seed=9, drift_share=0.02, scenario_users=300, feature_date=DAY)


@pytest.fixture(scope="module")
def segmenter(run):
    model = train_segmentation(run.features)
    model.version = "3"
    return model


@pytest.fixture(scope="module")
def detector(run):
    model = train_anomaly(run.features)
    model.version = "7"
    return model


def _table_columns(migration: str, table: str) -> list[str]:
    sql = (PROJECT_ROOT / "stack" / "migrations" / migration).read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.DOTALL).group(1)
    return [line.split()[0] for line in body.splitlines()
            if line.strip() and not line.strip().startswith(("PRIMARY", "--"))]


def test_row_columns_match_the_tables_of_the_migrations():
    assert set(USER_SEGMENT_COLUMNS) <= set(_table_columns("0001_analytics_tables.sql", "user_segments"))
    added = re.findall(r"ALTER TABLE user_anomaly_scores ADD COLUMN IF NOT EXISTS (\w+)",
                       (PROJECT_ROOT / "stack" / "migrations" / "0006_alert_budget_and_late_events.sql").read_text())
    assert [*_table_columns("0004_user_anomaly_scores.sql", "user_anomaly_scores"), *added] == [
        *ANOMALY_SCORE_COLUMNS[:-1], "updated_at", "alerted"]
    assert set(SCORING_RUN_COLUMNS) <= set(_table_columns("0006_alert_budget_and_late_events.sql", "ml_scoring_runs"))


def test_segment_rows_cover_eligible_users_with_the_models_names_and_version(run, segmenter):
    frame = score_segments(segmenter, run.features, DAY)
    assert list(frame.columns) == list(USER_SEGMENT_COLUMNS)
    assert set(frame["user_id"]) == set(eligible(run.features)["user_id"])
    assert (frame["segment_name"] == frame["segment_id"].map(segmenter.names)).all()
    assert (frame["model_version"] == "3").all() and (frame["model_name"] == "user_segments_kmeans").all()
    rows = table_rows(frame, USER_SEGMENT_COLUMNS)
    user, day, segment, name, _, _, distance = rows[0]
    assert isinstance(user, str) and name == segmenter.names[segment]
    assert isinstance(segment, int) and isinstance(distance, float) and day == DAY and distance >= 0
    assert score_segments(segmenter, run.features, DAY).equals(frame)


def test_scoring_needs_a_registered_version(run, segmenter):
    unregistered = type(segmenter)(segmenter.pipeline, segmenter.names)
    with pytest.raises(ValueError, match="registered model"):
        score_segments(unregistered, run.features, DAY)


def test_anomaly_rows_flag_scores_at_the_threshold_with_severity_and_top_features(run, detector):
    frame = score_anomalies(detector, run.features, DAY)
    t = detector.threshold.chosen
    assert (frame["is_anomaly"] == (frame["score"] >= t)).all() and frame["is_anomaly"].any()
    assert frame.loc[~frame["is_anomaly"], "severity"].isna().all()
    assert frame.loc[frame["is_anomaly"], "severity"].isin([s.value for s in Severity]).all()
    assert frame["top_features"].map(len).between(1, 3).all()
    rows = table_rows(frame, ANOMALY_SCORE_COLUMNS)
    assert len(rows[0]) == len(ANOMALY_SCORE_COLUMNS) and isinstance(rows[0][2], float)
    assert isinstance(rows[0][4], bool) and isinstance(rows[0][6], list)


def _alerted(detector, features, before=frozenset(), share=None, trusted=True):
    scores = score_anomalies(detector, features, DAY)
    share = detector.threshold.alert_share if share is None else share
    return alerts_within_budget(scores, set(before), share, trusted)


def test_alerts_follow_the_contract_and_the_loader_accepts_them(run, detector):
    scores, budget = _alerted(detector, run.features)
    alerts = anomaly_alerts(scores, DAY, DETECTED)
    assert len(alerts) == budget.alerted == int((scores["alerted"] & scores["is_anomaly"]).sum()) > 0
    start, end = window_ms(DAY)
    assert datetime.fromtimestamp(start / 1000, UTC) == datetime(2026, 11, 20, tzinfo=UTC)
    assert end == int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000) - 1
    for alert in alerts:
        assert tuple(alert) == ALERT_FIELDS
        assert alert["source"] == SOURCE_ML_ANOMALY and alert["rule"] == "behavior_anomaly"
        assert alert["alert_id"] == alert_id("behavior_anomaly", alert["user_id"], [f"user_anomaly_iforest:{DAY}"])
        assert (alert["window_start"], alert["window_end"], alert["detected_at"]) == (start, end, DETECTED)
        assert all(isinstance(v, str) for v in alert["details"].values())
        assert alert["details"]["standout_features"].split(",")[0] in alert["details"]
        row = dict(zip(LOADER_COLUMNS, alert_row(message_value(alert)), strict=True))
        assert row["alert_id"] == alert["alert_id"] and row["severity"] in {s.value for s in Severity}
        assert row["window_end"] == datetime.fromtimestamp(end / 1000, UTC)
    assert anomaly_alerts(scores, DAY, DETECTED + 5) != alerts  # detected_at moves,
    assert [a["alert_id"] for a in anomaly_alerts(scores, DAY, DETECTED + 5)] == [a["alert_id"] for a in alerts]


def test_the_alerts_are_mostly_drifting_users(run, detector):
    """2% of the users drift and the budget is 1%: the alerts cannot name them all, but most alerts must
    name one."""
    alerted = {a["user_id"] for a in anomaly_alerts(_alerted(detector, run.features)[0], DAY, DETECTED)}
    assert alerted and len(alerted & run.drifting) >= 0.75 * len(alerted)


def test_the_budget_holds_over_every_scoring_of_a_day_highest_scores_first(run, detector):
    """A tight budget caps the alerts to the highest scores; a later scoring keeps who was alerted and
    adds only what is left of the budget; an untrusted model alerts nobody but still scores everyone."""
    scores, first = _alerted(detector, run.features, share=0.004)
    assert first.budget == int(0.004 * len(scores)) == first.alerted and first.capped == first.past_threshold - first.budget > 0
    alerted = scores.loc[scores["alerted"]]
    assert alerted["score"].min() >= scores.loc[scores["is_anomaly"] & ~scores["alerted"], "score"].max()
    assert "capped" in first.reason and first.as_metadata()["capped"] == first.capped

    earlier = set(alerted["user_id"][: first.budget // 2])  # an earlier scoring alerted half of them
    rescored, again = _alerted(detector, run.features, before=earlier, share=0.004)
    assert again.alerted == first.budget and again.already == len(earlier) and again.new == first.budget - len(earlier)
    assert earlier <= set(rescored.loc[rescored["alerted"], "user_id"])

    quiet, probation = _alerted(detector, run.features, trusted=False)
    assert not quiet["alerted"].any() and probation.alerted == 0 and probation.past_threshold > 0
    assert anomaly_alerts(quiet, DAY, DETECTED) == [] and "probation" in probation.reason


def _segments(rows, day, version="1"):
    return pd.DataFrame([(u, day, s, n, "user_segments_kmeans", version, 1.0) for u, s, n in rows],
                        columns=list(USER_SEGMENT_COLUMNS))


def test_insights_announce_users_who_moved_by_segment_name_and_summarise_the_run():
    before = _segments([("a", 0, "big spenders"), ("b", 1, "night-time browsers"), ("c", 2, "daytime browsers")],
                       date(2026, 11, 25))
    # a retrained model numbers its segments differently: b keeps its name under another id and did not move
    now = _segments([("a", 4, "daytime browsers"), ("b", 3, "night-time browsers"), ("c", 4, "daytime browsers"),
                     ("d", 0, "big spenders")], DAY, version="2")
    messages = segment_change_insights(before, now, produced_at_ms=DETECTED)
    changes = [m for m in messages if m["type"] == INSIGHT_SEGMENT_CHANGE]
    assert [(m["user_id"], m["from_segment_name"], m["to_segment_name"]) for m in changes] == [
        ("a", "big spenders", "daytime browsers")]
    assert changes[0]["previous_scored_date"] == "2026-11-25" and changes[0]["previous_model_version"] == "1"
    summary = messages[-1]
    assert summary["type"] == INSIGHT_SEGMENT_SUMMARY and len(messages) == 2
    assert (summary["users_scored"], summary["users_moved"], summary["users_new"]) == (4, 1, 1)
    by_name = {s["segment_name"]: s for s in summary["segments"]}
    assert by_name["daytime browsers"]["moved_in"] == 1 and by_name["daytime browsers"]["users"] == 2
    assert by_name["big spenders"]["moved_out"] == 1 and by_name["big spenders"]["users"] == 1
    assert json.loads(message_value(summary)) == summary
    assert insight_key(changes[0]) == b"a" and insight_key(summary) == b"user_segments_kmeans"
    again = segment_change_insights(before, now, produced_at_ms=DETECTED + 1)
    assert [m["insight_id"] for m in again] == [m["insight_id"] for m in messages]


def test_a_rerun_of_the_same_day_compares_with_earlier_days_only():
    earlier = _segments([("a", 0, "big spenders")], date(2026, 11, 24))
    same_day = _segments([("a", 1, "daytime browsers")], DAY)
    messages = segment_change_insights(pd.concat([earlier, same_day]), same_day, produced_at_ms=DETECTED)
    assert [m["type"] for m in messages] == [INSIGHT_SEGMENT_CHANGE, INSIGHT_SEGMENT_SUMMARY]
    assert messages[0]["from_segment_name"] == "big spenders"
    first = segment_change_insights(pd.DataFrame(columns=list(USER_SEGMENT_COLUMNS)), same_day, DETECTED)
    assert [m["type"] for m in first] == [INSIGHT_SEGMENT_SUMMARY] and first[0]["users_new"] == 1
