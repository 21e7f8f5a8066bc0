"""Scoring a features day with the champions, as plain rows and messages for the publishing assets:

- `user_segments` rows (stack/migrations/0001): the segment of every eligible user on the day;
- `user_anomaly_scores` rows (stack/migrations/0004): the anomaly score of every eligible user;
- ML alerts for `security-alerts` (contract/alerts.py): the users at or above the deployed threshold, the
  highest scores first, within the day's budget (`alerts_within_budget`), and none from an untrusted model;
- segment-change insights for `analytics-insights` (schema in ml/README.md).

Everything is deterministic in its inputs (the same day scored by the same model gives the same rows,
alert ids and insight ids), so a rerun upserts the same keys and changes nothing. Users outside the
eligibility rule get no rows: the models say nothing about them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from contract.alerts import ALERT_FIELDS, SOURCE_ML_ANOMALY, alert_id
from ml.anomaly import ALERT_RULE, AnomalyModel, Evidence, severity
from ml.anomaly import MODEL_NAME as ANOMALY_MODEL
from ml.features import WINDOW_DAYS
from ml.matrix import eligible, feature_matrix
from ml.segmentation import MODEL_NAME as SEGMENTATION_MODEL
from ml.segmentation import SegmentationModel

USER_SEGMENTS_TABLE = "user_segments"
USER_SEGMENT_COLUMNS: tuple[str, ...] = (
    "user_id", "scored_date", "segment_id", "segment_name", "model_name", "model_version", "distance_to_centroid",
)
USER_SEGMENT_KEY: tuple[str, ...] = ("user_id", "scored_date")
ANOMALY_SCORES_TABLE = "user_anomaly_scores"
ANOMALY_SCORE_COLUMNS: tuple[str, ...] = (
    "user_id", "scored_date", "score", "threshold", "is_anomaly", "severity", "top_features", "model_name",
    "model_version", "alerted",
)
ANOMALY_SCORE_KEY: tuple[str, ...] = ("user_id", "scored_date")
# The rows `segment_change_insights` compares with: each user's latest earlier `user_segments` row of the
# model (psycopg named parameters; read it into a DataFrame with USER_SEGMENT_COLUMNS)
PREVIOUS_SEGMENTS_SQL = (
    f"SELECT DISTINCT ON (user_id) {', '.join(USER_SEGMENT_COLUMNS)} FROM {USER_SEGMENTS_TABLE} "
    "WHERE scored_date < %(scored_date)s AND model_name = %(model_name)s ORDER BY user_id, scored_date DESC"
)
INSIGHT_SCHEMA_VERSION = 1
INSIGHT_SEGMENT_CHANGE = "segment_change"
INSIGHT_SEGMENT_SUMMARY = "segment_summary"


def _version(model: SegmentationModel | AnomalyModel) -> str:
    if model.version is None:
        raise ValueError("score with a registered model (its `version` is unset): rows name the model version")
    return str(model.version)


def score_segments(model: SegmentationModel, features: pd.DataFrame, scored_date: date,
                   model_name: str = SEGMENTATION_MODEL) -> pd.DataFrame:
    """One `user_segments` row per eligible user of the day (columns USER_SEGMENT_COLUMNS)."""
    users = eligible(features, model.rule)
    labels, distances = model.assign(feature_matrix(users)) if len(users) else (np.array([], int), np.array([]))
    return pd.DataFrame({
        "user_id": users["user_id"].astype(str).to_numpy(),
        "scored_date": scored_date,
        "segment_id": labels.astype(int),
        "segment_name": [model.names[int(s)] for s in labels],
        "model_name": model_name,
        "model_version": _version(model),
        "distance_to_centroid": distances.astype(float),
    }, columns=list(USER_SEGMENT_COLUMNS))


def score_anomalies(model: AnomalyModel, features: pd.DataFrame, scored_date: date,
                    model_name: str = ANOMALY_MODEL) -> pd.DataFrame:
    """One `user_anomaly_scores` row per eligible user of the day (columns ANOMALY_SCORE_COLUMNS), plus
    two columns the alerts need and the table does not hold: `evidence` (the features that stood out,
    list of ml.anomaly.Evidence) and `events_7d`."""
    users = eligible(features, model.rule)
    matrix = feature_matrix(users)
    scores = model.score(matrix) if len(users) else np.array([])
    threshold = model.threshold.chosen
    evidence = model.standout_features(matrix) if len(users) else []
    levels = [severity(float(s), threshold) for s in scores]
    return pd.DataFrame({
        "user_id": users["user_id"].astype(str).to_numpy(),
        "scored_date": scored_date,
        "score": scores.astype(float),
        "threshold": threshold,
        "is_anomaly": scores >= threshold,
        "severity": [None if level is None else level.value for level in levels],
        "top_features": [[e.feature for e in ev] for ev in evidence],
        "model_name": model_name,
        "model_version": _version(model),
        "alerted": False,  # decided by alerts_within_budget
        "evidence": evidence,
        "events_7d": users["events_7d"].astype(int).to_numpy(),
    }, columns=[*ANOMALY_SCORE_COLUMNS, "evidence", "events_7d"])


# The users of a day an alert was raised for by earlier scorings (psycopg named parameters)
ALERTED_USERS_SQL = (f"SELECT user_id FROM {ANOMALY_SCORES_TABLE} WHERE scored_date = %(scored_date)s AND alerted "
                     "AND model_name = %(model_name)s")


@dataclass(frozen=True)
class AlertBudget:
    """What a scoring of a day did with its alert budget: at most floor(alert_share x eligible users) of
    the day's users raise an alert, whatever the time of day and however often the day is scored."""

    eligible: int
    past_threshold: int
    budget: int
    already: int  # alerted by earlier scorings of the day (they stay alerted)
    new: int
    capped: int  # past the threshold, not alerted before, and over the budget: no alert
    trusted: bool
    reason: str

    @property
    def alerted(self) -> int:
        return self.already + self.new

    def as_metadata(self) -> dict[str, object]:
        return {"eligible_users": self.eligible, "past_threshold": self.past_threshold, "alert_budget": self.budget,
                "alerted_before": self.already, "new_alerts": self.new, "alerted_users": self.alerted,
                "capped": self.capped, "trusted": self.trusted, "alerts": self.reason}


def alerts_within_budget(scores: pd.DataFrame, alerted_before: set[str], alert_share: float, trusted: bool,
                         history_days: float = WINDOW_DAYS) -> tuple[pd.DataFrame, AlertBudget]:
    """Mark in a `score_anomalies` frame who raises an alert (`alerted`): every user an earlier scoring of
    the day alerted, then, highest scores first, those past the threshold while the day's budget lasts. An
    untrusted model (trained on less than a whole window of data) raises none."""
    budget = math.floor(alert_share * len(scores))
    before = scores["user_id"].isin(alerted_before).to_numpy()
    already = len(alerted_before)
    candidates = scores.loc[scores["is_anomaly"] & ~before].sort_values("score", ascending=False, kind="stable")
    room = max(0, budget - already) if trusted else 0
    chosen = candidates.index[:room]
    alerted = before.copy()
    alerted[scores.index.get_indexer(chosen)] = True
    capped = len(candidates) - len(chosen) if trusted else 0
    if not trusted:
        reason = (f"probation: the model was trained on {history_days:.1f} of {WINDOW_DAYS} days of data; it scores "
                  "but raises no alert until a model trained on a whole window is champion")
    elif capped:
        reason = (f"capped: {len(candidates) + already} users past the threshold or alerted before, budget "
                  f"{budget} ({alert_share:.2%} of {len(scores)} eligible users); the {capped} lowest scores raise no alert")
    else:
        reason = f"within budget: {already + len(chosen)} of {budget} alerts ({alert_share:.2%} of {len(scores)} eligible users)"
    marked = scores.assign(alerted=alerted)
    return marked, AlertBudget(len(scores), int(scores["is_anomaly"].sum()), budget, already, len(chosen), capped,
                               trusted, reason)


# One row of ml_scoring_runs (stack/migrations/0006) per scoring of a day by the anomaly champion
SCORING_RUN_COLUMNS: tuple[str, ...] = (
    "scored_date", "model_name", "model_version", "as_of", "trusted", "history_days", "eligible_users",
    "past_threshold", "alerted_users", "new_alerts", "budget", "capped", "threshold", "dagster_run_id",
)
SCORING_RUN_SQL = (f"INSERT INTO ml_scoring_runs ({', '.join(SCORING_RUN_COLUMNS)}) "
                   f"VALUES ({', '.join(f'%({c})s' for c in SCORING_RUN_COLUMNS)})")


def scoring_run_row(budget: AlertBudget, scored_date: date, model: AnomalyModel, features: pd.DataFrame,
                    run_id: str | None) -> dict[str, object]:
    """The ml_scoring_runs row of one scoring of `features` (their `as_of`: where the window ended)."""
    as_of = features["as_of"].max() if "as_of" in features and len(features) else None
    return {"scored_date": scored_date, "model_name": ANOMALY_MODEL, "model_version": _version(model),
            "as_of": None if as_of is None else pd.Timestamp(as_of).to_pydatetime(), "trusted": budget.trusted,
            "history_days": float(model.history_days), "eligible_users": budget.eligible,
            "past_threshold": budget.past_threshold, "alerted_users": budget.alerted, "new_alerts": budget.new,
            "budget": budget.budget, "capped": budget.capped, "threshold": float(model.threshold.chosen),
            "dagster_run_id": run_id}


def table_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple]:
    """A scored frame as plain tuples in `columns` order (for resources.postgres.copy_upsert), with
    numpy scalars turned into Python values."""
    return [tuple(v.item() if isinstance(v, np.generic) else v for v in row)
            for row in frame[list(columns)].itertuples(index=False, name=None)]


def window_ms(feature_date: date) -> tuple[int, int]:
    """The features' 7-day window in epoch ms: first ms of D-6 and last ms of D (UTC)."""
    start = datetime.combine(feature_date - timedelta(days=WINDOW_DAYS - 1), time(), tzinfo=UTC)
    end = datetime.combine(feature_date + timedelta(days=1), time(), tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1


def _evidence_details(evidence: Sequence[Evidence]) -> dict[str, str]:
    return {e.feature: e.describe() for e in evidence}


def anomaly_alerts(scores: pd.DataFrame, feature_date: date, detected_at_ms: int) -> list[dict]:
    """One alert (contract/alerts.py, every ALERT_FIELDS key) per user of a `score_anomalies` frame marked
    `alerted` by alerts_within_budget and past the threshold now. The alert id is alert_id("behavior_anomaly",
    user, ["<model>:<date>"]): a rescoring of the day, even by a newer version, is the same alert, stored once
    by the loader (so sending the day's alerts again after a failed run changes nothing)."""
    start_ms, end_ms = window_ms(feature_date)
    alerts = []
    for row in scores.loc[scores["alerted"] & scores["is_anomaly"]].itertuples(index=False):
        key = f"{row.model_name}:{feature_date.isoformat()}"
        details = {
            "model": row.model_name,
            "model_version": str(row.model_version),
            "score": f"{row.score:.4f}",
            "threshold": f"{row.threshold:.4f}",
            "feature_date": feature_date.isoformat(),
            "standout_features": ",".join(e.feature for e in row.evidence),
            **_evidence_details(row.evidence),
        }
        alert = {
            "alert_id": alert_id(ALERT_RULE, row.user_id, [key]),
            "rule": ALERT_RULE,
            "severity": row.severity,
            "source": SOURCE_ML_ANOMALY,
            "user_id": row.user_id,
            "ip": None,
            "window_start": start_ms,
            "window_end": end_ms,
            "event_count": int(row.events_7d),
            "evidence_event_ids": [],
            "trigger_event_id": None,
            "trigger_event_ts": None,
            "detected_at": int(detected_at_ms),
            "details": details,
        }
        alerts.append({field: alert[field] for field in ALERT_FIELDS})
    return alerts


def message_value(payload: dict) -> bytes:
    """A message (alert or insight) as the compact JSON bytes put on a topic."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=False).encode()


def _insight_id(*parts: str) -> str:
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def segment_change_insights(previous: pd.DataFrame, current: pd.DataFrame, produced_at_ms: int) -> list[dict]:
    """Messages for `analytics-insights` after a scoring run: one `segment_change` per user whose
    segment name differs from their latest earlier row, then one `segment_summary` of the run.

    `current` is a `score_segments` frame (one model, one day); `previous` holds the users' most
    recent earlier `user_segments` rows (same columns; what the table held before this run, earlier
    days only). Segments are compared by name, not id: ids are arbitrary per model version, names are
    derived from the profile, so a retrained model does not make everyone "move". Users new to the
    segments (no earlier row) are counted in the summary, not announced one by one."""
    if current.empty:
        return []
    scored_date = pd.Timestamp(current["scored_date"].iloc[0]).date()
    model_name, version = str(current["model_name"].iloc[0]), str(current["model_version"].iloc[0])
    before = previous.loc[pd.to_datetime(previous["scored_date"]).dt.date < scored_date] if len(previous) else previous
    before = (before.sort_values(["user_id", "scored_date"]).drop_duplicates("user_id", keep="last")
              if len(before) else pd.DataFrame(columns=list(USER_SEGMENT_COLUMNS)))
    joined = current.merge(before[["user_id", "scored_date", "segment_id", "segment_name", "model_version"]],
                           on="user_id", how="left", suffixes=("", "_before"))
    moved = joined.loc[joined["segment_name_before"].notna() & (joined["segment_name"] != joined["segment_name_before"])]
    messages = []
    for row in moved.sort_values("user_id").itertuples(index=False):
        messages.append({
            "type": INSIGHT_SEGMENT_CHANGE,
            "schema_version": INSIGHT_SCHEMA_VERSION,
            "insight_id": _insight_id(INSIGHT_SEGMENT_CHANGE, model_name, scored_date.isoformat(), row.user_id),
            "user_id": row.user_id,
            "scored_date": scored_date.isoformat(),
            "previous_scored_date": pd.Timestamp(row.scored_date_before).date().isoformat(),
            "from_segment_id": int(row.segment_id_before),
            "from_segment_name": row.segment_name_before,
            "to_segment_id": int(row.segment_id),
            "to_segment_name": row.segment_name,
            "distance_to_centroid": round(float(row.distance_to_centroid), 6),
            "model_name": model_name,
            "model_version": version,
            "previous_model_version": str(row.model_version_before),
            "produced_at": int(produced_at_ms),
        })
    segments = []
    for (segment_id, name), group in current.groupby(["segment_id", "segment_name"], sort=True):
        segments.append({
            "segment_id": int(segment_id),
            "segment_name": name,
            "users": len(group),
            "share": round(len(group) / len(current), 6),
            "moved_in": int((moved["segment_name"] == name).sum()),
            "moved_out": int((moved["segment_name_before"] == name).sum()),
        })
    messages.append({
        "type": INSIGHT_SEGMENT_SUMMARY,
        "schema_version": INSIGHT_SCHEMA_VERSION,
        "insight_id": _insight_id(INSIGHT_SEGMENT_SUMMARY, model_name, scored_date.isoformat(), version),
        "scored_date": scored_date.isoformat(),
        "model_name": model_name,
        "model_version": version,
        "users_scored": len(current),
        "users_moved": len(moved),
        "users_new": int(joined["segment_name_before"].isna().sum()),
        "segments": segments,
        "produced_at": int(produced_at_ms),
    })
    return messages


def insight_key(message: dict) -> bytes:
    """Kafka key of an insight: the user for a segment change (a user's changes stay in order), the
    model for a summary."""
    return (message.get("user_id") or message["model_name"]).encode()
