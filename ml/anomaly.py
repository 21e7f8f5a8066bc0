"""Behaviour anomalies: IsolationForest on how far, and on how many features, each eligible user is from
their peer group.

The published score is the anomaly score of the original paper (Liu, Ting, Zhou 2008), s(x, n) =
2^(-E[h(x)] / c(n)) in (0, 1], which scikit-learn returns negated from `score_samples`. Read it as the
paper does: close to 1 is clearly anomalous, well below 0.5 is clearly normal, and a population whose
scores are all near 0.5 has no distinct anomaly. The original design alerted at 0.8.

The pipeline: registry transforms and scaling, then `PeerResiduals`, then `DeviationSummary`, then the
forest.

- Peer groups: the population is a few behaviours of very different sizes (the simulator's bot-like
  scrapers are 3% of users). Fitted on the features themselves, the forest isolates those small but
  normal groups first. So every user is placed in one of `n_segments` peer groups (KMeans on the scaled
  features, fitted with the forest) and described by their per-feature z-score within that group:
  "unusual for users like them". A group's spread of a feature is floored at half the median spread of
  that feature over the groups (and at 0.05): where a group barely varies (power shoppers are active on 7
  of 7 days), one ordinary day off would otherwise be a z of 14.
- Evidence: a user with a dozen events a week has noisy shares and counts; their z-scores are shrunk by
  sqrt(n / (n + 30)), n their events in the 7 days, so a deviation counts for as much as the behaviour
  behind it supports.
- What the forest sees: not the 30 z-scores but their order statistics, the five largest |z| and the root
  mean square (`DeviationSummary`), each raised to at least its training median (being closer to the group
  than most users is not an anomaly). An IsolationForest picks one feature per split: a user extreme on a
  single feature of 30 (a new country every day) was isolated only in the trees that happened to split on
  that feature, and scored like an ordinary user.

Measured on three simulated deployments (4,000 users, 5 events/s, 8 days, seeds 11/21/31; trained on the
closed day before the last, scored on the last; ml/README.md): average precision for the drifting users
0.44/0.60/0.45 with the forest on the 30 peer z-scores, 0.73/0.79/0.85 with the steps above.

Why `max_samples` defaults to 2048 and not the paper's 256: small groups are thin in a 256-point
sub-sample (measured on the earlier residual forest: PR-AUC 0.62 against 0.77).

The deployed threshold is chosen on validation data (`choose_threshold`). Every alert carries the evidence
of why: the features on which the user is furthest from their peer group (`standout_features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline

from contract.alerts import Severity
from ml.defaults import (
    ANOMALY_MODEL,
    DEFAULT_ALERT_SHARE,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_THRESHOLD,
    DEFAULT_TREES,
    MIN_TRAINING_USERS,
    trusted,
)
from ml.features import FEATURES_BY_NAME, history_days
from ml.matrix import (
    DEFAULT_ELIGIBILITY,
    EligibilityRule,
    TrainingData,
    eligible,
    feature_matrix,
    holdout_mask,
    preprocessing_steps,
    require_users,
    window_of_rows,
)

MODEL_NAME = ANOMALY_MODEL
# the alert rule of ML anomalies, as the simulator's ground truth names it (simulator.truth.RULE_BEHAVIOR_ANOMALY;
# not imported from there to keep the simulator package out of scoring; a unit test keeps the two equal)
ALERT_RULE = "behavior_anomaly"
SCORE_FLOOR = 0.5  # below this the paper calls a point normal: never alert there
DEFAULT_PEER_GROUPS = 5
MIN_PEER_SCALE = 0.05  # floor of a peer group's spread, in population standard deviations
POOLED_SCALE_SHARE = 0.5  # ... and at this share of the feature's median spread over the groups
EVIDENCE_EVENTS = 30  # z-scores are shrunk by sqrt(n / (n + this)), n the user's events in the 7 days
EVIDENCE_FEATURE = "events_7d"
SUMMARY_TOP = 5  # the forest sees the largest |z| this many, and their root mean square
EVIDENCE_MIN_Z = 2.0
EVIDENCE_TOP = 3
# severity by how far past the threshold a score is, as a share of the room left up to 1
SEVERITY_BANDS: tuple[tuple[float, Severity], ...] = (
    (0.5, Severity.CRITICAL),
    (0.25, Severity.HIGH),
    (0.1, Severity.MEDIUM),
    (0.0, Severity.LOW),
)


@dataclass(frozen=True)
class ThresholdChoice:
    """The deployed threshold and how it was chosen, with the figures a reviewer wants beside it."""

    configured: float
    chosen: float
    rule: str  # "configured" or "validation_quantile"
    alert_share: float  # the budget: share of validation users an alert threshold may flag
    validation_users: int
    flagged_at_configured: int  # validation users at or above the configured threshold
    flagged_at_chosen: int
    reason: str

    def as_params(self) -> dict[str, object]:
        return {"threshold.configured": self.configured, "threshold.rule": self.rule,
                "threshold.alert_share": self.alert_share, "threshold.floor": SCORE_FLOOR}


@dataclass(frozen=True)
class Evidence:
    """One feature on which a user stood out: the raw value, the typical value of the user's peer group
    (its centre, back on the raw scale) and the z-score within the group."""

    feature: str
    value: float
    typical: float
    z: float

    def describe(self) -> str:
        return f"value {self.value:.4g}, typical of similar users {self.typical:.4g}, z {self.z:+.1f}"


class PeerResiduals(TransformerMixin, BaseEstimator):
    """Pipeline step: each (scaled) row as its z-scores within its peer group, shrunk by the evidence
    behind them. Fitting clusters the rows into `n_segments` groups with KMeans and keeps each group's
    centre and per-feature spread, floored at `min_scale` and at `pooled_share` of the median spread of
    the feature over the groups. `evidence` = (column, mean, scale) locates the scaled log1p of the
    user's events, from which the shrinkage sqrt(n / (n + evidence_events)) is taken (None: none)."""

    def __init__(self, n_segments: int = DEFAULT_PEER_GROUPS, seed: int = 0, min_scale: float = MIN_PEER_SCALE,
                 pooled_share: float = POOLED_SCALE_SHARE, evidence: tuple[int, float, float] | None = None,
                 evidence_events: float = EVIDENCE_EVENTS):
        self.n_segments = n_segments
        self.seed = seed
        self.min_scale = min_scale
        self.pooled_share = pooled_share
        self.evidence = evidence
        self.evidence_events = evidence_events

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.kmeans_ = KMeans(n_clusters=self.n_segments, n_init=4, random_state=self.seed).fit(X)
        labels = self.kmeans_.labels_
        self.center_ = self.kmeans_.cluster_centers_
        spread = np.vstack([X[labels == k].std(axis=0) if (labels == k).sum() > 1 else np.full(X.shape[1], np.nan)
                            for k in range(self.n_segments)])
        floor = np.maximum(self.min_scale, self.pooled_share * np.nanmedian(spread, axis=0))
        self.scale_ = np.maximum(np.nan_to_num(spread, nan=1.0), floor)
        return self

    def peer_group(self, X) -> np.ndarray:
        return self.kmeans_.predict(np.asarray(X, dtype=float))

    def z(self, X) -> np.ndarray:
        """The plain z-scores within the group (what an alert's evidence shows)."""
        X = np.asarray(X, dtype=float)
        group = self.peer_group(X)
        return (X - self.center_[group]) / self.scale_[group]

    def weight(self, X) -> np.ndarray:
        """Per row, how much of its deviation the evidence supports: sqrt(n / (n + evidence_events))."""
        X = np.asarray(X, dtype=float)
        if self.evidence is None:
            return np.ones(len(X))
        column, mean, scale = self.evidence
        events = np.expm1(X[:, column] * scale + mean).clip(min=0)
        return np.sqrt(events / (events + self.evidence_events))

    def transform(self, X) -> np.ndarray:
        return self.z(X) * self.weight(X)[:, None]


class DeviationSummary(TransformerMixin, BaseEstimator):
    """Pipeline step: a row of z-scores as its `top` largest |z| (in order) and their root mean square,
    each raised to at least its training median, so that only being further from the group than usual
    stands out to the forest."""

    def __init__(self, top: int = SUMMARY_TOP):
        self.top = top

    def _summary(self, Z) -> np.ndarray:
        Z = np.asarray(Z, dtype=float)
        largest = -np.sort(-np.abs(Z), axis=1)[:, : self.top]
        return np.c_[largest, np.sqrt((Z**2).mean(axis=1))]

    def fit(self, Z, y=None):
        self.median_ = np.median(self._summary(Z), axis=0)
        return self

    def transform(self, Z) -> np.ndarray:
        return np.maximum(self._summary(Z), self.median_)


@dataclass
class AnomalyModel:
    """A fitted anomaly model: the pipeline (transforms, scaling, peer residuals, forest) and its
    deployed threshold."""

    pipeline: Pipeline
    threshold: ThresholdChoice
    rule: EligibilityRule = DEFAULT_ELIGIBILITY
    params: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training: TrainingData | None = None
    version: str | None = None  # the registry version, once logged or loaded
    example: pd.DataFrame | None = None  # a few training rows: the MLflow input example
    validation_scores: np.ndarray | None = None  # the hold-out's scores the threshold was chosen on
    history_days: float = 0.0  # days of the features' window the training data covered

    @property
    def trusted(self) -> bool:
        """Trained on a whole window of data: its alerts mean what its threshold says (ml.defaults)."""
        return trusted(self.history_days)

    def score(self, matrix: pd.DataFrame) -> np.ndarray:
        return paper_score(self.pipeline, matrix)

    def standout_features(self, matrix: pd.DataFrame, top: int = EVIDENCE_TOP) -> list[list[Evidence]]:
        return standout_features(self.pipeline, matrix, top)


def build_pipeline(n_estimators: int = DEFAULT_TREES, max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0,
                   peer_groups: int = DEFAULT_PEER_GROUPS) -> Pipeline:
    """Registry transforms, scaling, peer-group residuals, their summary, IsolationForest (no
    contamination: the threshold is ours). Fit it with `fit_pipeline`."""
    forest = IsolationForest(n_estimators=n_estimators, max_samples=max_samples, random_state=seed)
    return Pipeline([*preprocessing_steps(), ("peers", PeerResiduals(peer_groups, seed)),
                     ("summary", DeviationSummary()), ("model", forest)])


def fit_pipeline(pipeline: Pipeline, matrix: pd.DataFrame) -> Pipeline:
    """Fit step by step: the peer step is told where the scaled events column is once the scaler is fitted."""
    scaled = pipeline[:2].fit_transform(matrix)
    column = list(matrix.columns).index(EVIDENCE_FEATURE)
    scaler = pipeline.named_steps["scale"]
    peers: PeerResiduals = pipeline.named_steps["peers"]
    peers.set_params(evidence=(column, float(scaler.mean_[column]), float(scaler.scale_[column])))
    pipeline[3:].fit(peers.fit_transform(scaled))
    return pipeline


def paper_score(pipeline: Pipeline, matrix: pd.DataFrame) -> np.ndarray:
    """The original paper's anomaly score s(x, n) in (0, 1] for each row of a raw feature matrix."""
    return -pipeline.score_samples(matrix)


def choose_threshold(
    validation_scores: np.ndarray,
    configured: float = DEFAULT_THRESHOLD,
    alert_share: float = DEFAULT_ALERT_SHARE,
    floor: float = SCORE_FLOOR,
) -> ThresholdChoice:
    """The deployed threshold, from the scores of validation users (the training hold-out):

    1. keep the configured threshold when it flags at least one validation user and at most
       `alert_share` of them: the original design's meaning holds on this data;
    2. otherwise take the score that flags `alert_share` of the validation users (their
       1 - alert_share quantile), so alerts stay within what the security team reviews a day: this
       lowers a threshold that flags nobody and raises one that flags too many;
    3. never below `floor` (0.5): a score there is normal in the paper's reading, however few users
       score higher.
    """
    scores = np.asarray(validation_scores, dtype=float)
    if not 0 < alert_share < 1:
        raise ValueError(f"alert_share must be within (0, 1), got {alert_share}")
    if len(scores) == 0:
        raise ValueError("no validation scores to choose a threshold from")
    n = len(scores)
    at_configured = int((scores >= configured).sum())
    if 0 < at_configured <= alert_share * n:
        chosen, rule = configured, "configured"
        reason = (f"the configured threshold {configured:.3f} flags {at_configured} of {n} validation users "
                  f"({at_configured / n:.2%}), within the {alert_share:.2%} budget: kept")
    else:
        quantile = float(np.quantile(scores, 1 - alert_share))
        chosen, rule = max(quantile, floor), "validation_quantile"
        why = "nobody" if at_configured == 0 else f"{at_configured} ({at_configured / n:.2%}, over budget)"
        reason = (f"the configured threshold {configured:.3f} flags {why} of {n} validation users (highest "
                  f"score {scores.max():.3f}); deployed the {1 - alert_share:.2%} quantile of their scores, "
                  f"{quantile:.3f}" + (f", raised to the floor {floor}" if quantile < floor else ""))
    return ThresholdChoice(configured, chosen, rule, alert_share, n, at_configured,
                           int((scores >= chosen).sum()), reason)


def severity(score: float, threshold: float) -> Severity | None:
    """Alert severity of a score: None below the threshold, then LOW, MEDIUM, HIGH, CRITICAL as the
    score covers 0-10%, 10-25%, 25-50%, 50-100% of the way from the threshold to 1."""
    if score < threshold:
        return None
    margin = (score - threshold) / max(1.0 - threshold, 1e-9)
    return next(level for bound, level in SEVERITY_BANDS if margin >= bound)


def peer_z(pipeline: Pipeline, matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the z-scores within its peer group and the group's centre on the raw feature scale (the
    scaling and the registry transform undone)."""
    scaled = pipeline[:2].transform(matrix)
    peers: PeerResiduals = pipeline.named_steps["peers"]
    group = peers.peer_group(scaled)
    typical = pipeline.named_steps["scale"].inverse_transform(peers.center_[group])
    for i, name in enumerate(matrix.columns):
        if FEATURES_BY_NAME[name].transform == "log1p":
            typical[:, i] = np.expm1(typical[:, i])
    return peers.z(scaled), typical


def standout_features(pipeline: Pipeline, matrix: pd.DataFrame, top: int = EVIDENCE_TOP,
                      min_z: float = EVIDENCE_MIN_Z) -> list[list[Evidence]]:
    """Per row, the features that stood out within the user's peer group: up to `top` with |z| >=
    `min_z`, largest first; a row with none that far out still gets its single largest, so every alert
    says something."""
    if len(matrix) == 0:
        return []
    z, typical = peer_z(pipeline, matrix)
    names = list(matrix.columns)
    raw = matrix.to_numpy()
    order = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :top]
    result = []
    for i, columns in enumerate(order):
        picked = [c for c in columns if abs(z[i, c]) >= min_z] or [columns[0]]
        result.append([Evidence(names[c], float(raw[i, c]), float(typical[i, c]), float(z[i, c])) for c in picked])
    return result


def anomaly_metrics(scores: np.ndarray, threshold: ThresholdChoice, drifting: np.ndarray | None = None
                    ) -> dict[str, float]:
    """Share of users at or above the configured and the deployed threshold, the highest score and
    99th percentile, and with ground truth (`drifting`: True for users whose behaviour drifts) the
    ROC-AUC, PR-AUC (average precision) and precision/recall at both thresholds. A metric that has no
    value (no positive user, nobody flagged) is NaN: "0.8 flags nobody" shows as precision NaN, recall 0."""
    scores = np.asarray(scores, dtype=float)
    metrics = {
        "users": float(len(scores)),
        "max_score": float(scores.max()),
        "score_p99": float(np.quantile(scores, 0.99)),
        "threshold_configured": threshold.configured,
        "threshold_chosen": threshold.chosen,
    }
    for label, t in (("configured", threshold.configured), ("chosen", threshold.chosen)):
        flagged = scores >= t
        metrics[f"flagged_at_{label}"] = float(flagged.sum())
        metrics[f"share_above_{label}"] = float(flagged.mean())
        if drifting is not None:
            truth = np.asarray(drifting, dtype=bool)
            hits = float((flagged & truth).sum())
            metrics[f"precision_at_{label}"] = hits / float(flagged.sum()) if flagged.any() else float("nan")
            metrics[f"recall_at_{label}"] = hits / float(truth.sum()) if truth.any() else float("nan")
    if drifting is not None:
        truth = np.asarray(drifting, dtype=bool)
        metrics["drifting_users"] = float(truth.sum())
        both = truth.any() and not truth.all()
        metrics["roc_auc"] = float(roc_auc_score(truth, scores)) if both else float("nan")
        metrics["pr_auc"] = float(average_precision_score(truth, scores)) if both else float("nan")
    return metrics


def train_anomaly(
    features: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    alert_share: float = DEFAULT_ALERT_SHARE,
    n_estimators: int = DEFAULT_TREES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    peer_groups: int = DEFAULT_PEER_GROUPS,
    seed: int = 0,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY,
    holdout_share: float = 0.2,
    min_users: int = MIN_TRAINING_USERS,
    drifting: set[str] | None = None,
) -> AnomalyModel:
    """Fit IsolationForest on the eligible users outside the hash hold-out, choose the deployed
    threshold on the hold-out's scores, and measure both sides (`train.*`, `holdout.*`; with
    `drifting` user ids, the truth metrics too). Raises NotEnoughUsers below `min_users` training users."""
    users = eligible(features, rule)
    held = holdout_mask(users["user_id"], holdout_share)
    train, holdout = users.loc[~held], users.loc[held]
    require_users(len(train), max(min_users, 10 * peer_groups), MODEL_NAME, rule, len(features))
    require_users(len(holdout), 1, f"{MODEL_NAME} threshold validation", rule, len(features))
    train_matrix, holdout_matrix = feature_matrix(train), feature_matrix(holdout)
    pipeline = fit_pipeline(build_pipeline(n_estimators, min(max_samples, len(train)), seed, peer_groups), train_matrix)
    validation_scores = paper_score(pipeline, holdout_matrix)
    choice = choose_threshold(validation_scores, threshold, alert_share)
    first, last = window_of_rows(features)
    model = AnomalyModel(
        pipeline=pipeline,
        threshold=choice,
        rule=rule,
        params={"n_estimators": n_estimators, "max_samples": min(max_samples, len(train)), "seed": seed,
                "peer_groups": peer_groups, "peer_min_scale": MIN_PEER_SCALE, "peer_pooled_scale": POOLED_SCALE_SHARE,
                "evidence_events": EVIDENCE_EVENTS, "summary_top": SUMMARY_TOP,
                "holdout_share": holdout_share, **choice.as_params(), **rule.as_params()},
        training=TrainingData(first, last, len(features), len(users), len(train), len(holdout), history_days(features)),
        example=train_matrix.head(5),
        validation_scores=validation_scores,
        history_days=history_days(features),
    )
    for side, frame, matrix in (("train", train, train_matrix), ("holdout", holdout, holdout_matrix)):
        truth = frame["user_id"].isin(drifting).to_numpy() if drifting is not None else None
        for name, value in anomaly_metrics(paper_score(pipeline, matrix), choice, truth).items():
            model.metrics[f"{side}.{name}"] = value
    return model
