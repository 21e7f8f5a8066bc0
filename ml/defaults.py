"""The models' names, defaults and eligibility rule: light to import (no scikit-learn, no MLflow), so the
code location can declare its run config and metadata without loading the modelling stack; the modules
that train and score import these from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SEGMENTATION_MODEL = "user_segments_kmeans"
ANOMALY_MODEL = "user_anomaly_iforest"
DEFAULT_K = 5
DEFAULT_THRESHOLD = 0.8  # the original design's threshold, in the paper's score
DEFAULT_ALERT_SHARE = 0.01  # at most 1% of eligible users a day become alerts
DEFAULT_TREES = 200
DEFAULT_MAX_SAMPLES = 2048
MIN_TRAINING_USERS = 200


@dataclass(frozen=True)
class EligibilityRule:
    """Who the models are fitted and scored on: users active enough in the 7 days to have a behaviour.

    All three minimums must hold. The defaults keep the simulator's dormant persona (a few short
    sessions a week) and drop scenario identities (one burst of events in one session on one day).
    """

    min_events_7d: int = 10
    min_sessions_7d: int = 2
    min_active_days_7d: int = 2

    def as_params(self) -> dict[str, int]:
        """The rule as MLflow params (`eligibility.min_events_7d`, ...)."""
        return {f"eligibility.{k}": v for k, v in asdict(self).items()}


DEFAULT_ELIGIBILITY = EligibilityRule()
