"""The models' names, defaults and eligibility rule: light to import (no scikit-learn, no MLflow), so the
code location can declare its run config and metadata without loading the modelling stack; the modules
that train and score import these from here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ml.features import WINDOW_DAYS

SEGMENTATION_MODEL = "user_segments_kmeans"
ANOMALY_MODEL = "user_anomaly_iforest"
DEFAULT_K = 5
DEFAULT_THRESHOLD = 0.8  # the original design's threshold, in the paper's score
DEFAULT_ALERT_SHARE = 0.01  # at most 1% of eligible users a day become alerts
DEFAULT_TREES = 200
DEFAULT_MAX_SAMPLES = 2048
MIN_TRAINING_USERS = 200
# A model is trusted to raise alerts once the features it was trained on covered their whole window with
# data: trained on a younger deployment (day 3 of its first week: 3 of 7 days), every feature of the days
# it scores counts more days than the training saw, and the threshold chosen on the training day means
# nothing there. Such a model scores into PostgreSQL but alerts nobody. An hour short of 7 still counts
# as whole (a window that opens in the first hour of the data).
TRUSTED_HISTORY_DAYS = WINDOW_DAYS - 1 / 24


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

    def for_history(self, history_days: float) -> EligibilityRule:
        """The rule on features whose window the data covers for only `history_days` days: nobody can
        have been active on more days than there are (a deployment on its first day asks for one)."""
        days = max(1, math.ceil(history_days - 1e-9))
        return replace(self, min_active_days_7d=min(self.min_active_days_7d, days))


def trusted(history_days: float) -> bool:
    """Whether a model trained on features covering `history_days` of their window may raise alerts."""
    return history_days >= TRUSTED_HISTORY_DAYS


DEFAULT_ELIGIBILITY = EligibilityRule()
