"""Both models against simulator ground truth, in one call: the figures the quality benchmark prints and
MLflow carries (ARI of the segments against the personas; ROC-AUC, PR-AUC and precision/recall of the
anomaly score for the drifting users, at the configured and the deployed threshold).

The models are trained here on the features given (as the scheduled training would), unless fitted
ones are passed (e.g. the champions); either way they are evaluated on every eligible user of the
features, training and hold-out users alike, since the truth is about users, not about the split.
Drifting users the eligibility rule leaves out count as missed in `recall_all_drifting`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.anomaly import DEFAULT_ALERT_SHARE, DEFAULT_THRESHOLD, AnomalyModel, anomaly_metrics, train_anomaly
from ml.matrix import DEFAULT_ELIGIBILITY, EligibilityRule, eligible, feature_matrix
from ml.segmentation import DEFAULT_K, SegmentationModel, segmentation_metrics, train_segmentation


@dataclass
class Evaluation:
    users: int  # rows of the features
    eligible: int
    segmentation: dict[str, float]
    segment_names: dict[int, str]
    personas_by_segment: pd.DataFrame  # segment name x persona: eligible users with a known persona
    anomaly: dict[str, float]
    threshold_reason: str
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat `eval.segmentation.*` / `eval.anomaly.*` figures, e.g. for MLflow."""
        out = {f"eval.segmentation.{k}": v for k, v in self.segmentation.items()}
        out.update({f"eval.anomaly.{k}": v for k, v in self.anomaly.items()})
        return out

    def lines(self) -> list[str]:
        """The figures as printable lines."""
        s, a = self.segmentation, self.anomaly

        def f(v: float | None) -> str:
            return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"

        sizes = ", ".join(f"{n} {int(s.get(f'segment_size.{i}', 0)):,}" for i, n in self.segment_names.items())
        out = [
            f"users {self.users:,}, eligible {self.eligible:,}",
            (f"segmentation: ARI vs personas {f(s.get('ari_personas'))}, silhouette {f(s['silhouette'])}, "
             f"Davies-Bouldin {f(s['davies_bouldin'])}"),
            f"segments: {sizes}",
            (f"anomaly: ROC-AUC {f(a.get('roc_auc'))}, PR-AUC {f(a.get('pr_auc'))}, drifting users eligible "
             f"{int(a.get('drifting_users', 0))} of {int(a.get('drifting_total', 0))}, max score {f(a['max_score'])}"),
        ]
        for label in ("configured", "chosen"):
            out.append(f"  at {label} threshold {a[f'threshold_{label}']:.3f}: flagged {int(a[f'flagged_at_{label}'])}, "
                       f"precision {f(a.get(f'precision_at_{label}'))}, recall {f(a.get(f'recall_at_{label}'))}")
        out.append(f"  recall of all drifting users at the chosen threshold: {f(a.get('recall_all_drifting'))}")
        out.append(f"  threshold rule: {self.threshold_reason}")
        if not self.personas_by_segment.empty:
            out += ["segment x persona:", *self.personas_by_segment.to_string().splitlines()]
        return out + self.notes


def evaluate_models(
    features: pd.DataFrame,
    personas: pd.Series | None = None,
    drifting: set[str] | None = None,
    k: int = DEFAULT_K,
    threshold: float = DEFAULT_THRESHOLD,
    alert_share: float = DEFAULT_ALERT_SHARE,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY,
    seed: int = 0,
    segmentation: SegmentationModel | None = None,
    anomaly: AnomalyModel | None = None,
) -> Evaluation:
    """Train (or take) both models and measure them on the eligible users of `features` against
    `personas` (persona by user_id; ml.truth.read_personas) and `drifting` (user ids;
    ml.truth.read_drifting_users). Without truth, the label-free figures only."""
    segmentation = segmentation or train_segmentation(features, k=k, seed=seed, rule=rule)
    anomaly = anomaly or train_anomaly(features, threshold=threshold, alert_share=alert_share, seed=seed, rule=rule)
    users = eligible(features, segmentation.rule)
    matrix = feature_matrix(users)
    known = personas.reindex(users["user_id"]).reset_index(drop=True) if personas is not None else None
    seg_metrics = segmentation_metrics(segmentation, matrix, known, seed=seed)
    labels, _ = segmentation.assign(matrix)
    crosstab = pd.DataFrame()
    if known is not None and known.notna().any():
        named = pd.Series([segmentation.names[int(s)] for s in labels])
        crosstab = pd.crosstab(named[known.notna()], known[known.notna()])
        crosstab.index.name, crosstab.columns.name = "segment", "persona"

    scored = eligible(features, anomaly.rule)
    scores = anomaly.score(feature_matrix(scored))
    truth = scored["user_id"].isin(drifting).to_numpy() if drifting is not None else None
    an_metrics = anomaly_metrics(scores, anomaly.threshold, truth)
    notes = []
    if drifting is not None:
        present = features["user_id"].isin(drifting).sum()
        an_metrics["drifting_total"] = float(present)
        hits = float((truth & (scores >= anomaly.threshold.chosen)).sum())
        an_metrics["recall_all_drifting"] = hits / present if present else float("nan")
        if present > truth.sum():
            notes.append(f"{int(present - truth.sum())} drifting users in the features are not eligible (too "
                         "little activity) and are counted as missed in recall_all_drifting")
    return Evaluation(len(features), len(users), seg_metrics, dict(segmentation.names), crosstab, an_metrics,
                      anomaly.threshold.reason, notes)
