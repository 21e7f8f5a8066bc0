"""From the `user_features` table to what the models see: who is modelled, which columns, which transforms.

The registry (ml.features) decides the columns (`model_features()`, in that order) and the transform of
each (log1p for heavy-tailed counts); the transforms and the scaling are steps of every model's
scikit-learn Pipeline, so a model logged to MLflow takes the raw feature columns of the table and a
loaded champion needs nothing from this module to score.

Eligibility: most user ids of a simulated run (and many of a real one) are identities with a handful of
events in the week: attackers and victims created for one attack scenario, sign-ups that never came
back. Fitted on everyone, the segments would describe attack scripts and the anomaly model would learn
that "a few failed logins and nothing else" is normal. So models are fitted and scored only on users
with enough activity in the 7-day window (`EligibilityRule`); the others get no segment and no anomaly
score (the CEP rules, not the models, watch them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml.defaults import DEFAULT_ELIGIBILITY, WINDOW_DAYS, EligibilityRule
from ml.features import KEY_COLUMNS, model_features


@dataclass
class TrainingData:
    """What a model was fitted on: the partition range, the rows read, who was eligible and used."""

    first_date: str
    last_date: str
    rows: int  # user rows in the features read
    eligible: int
    train: int
    holdout: int
    history_days: float = WINDOW_DAYS  # days of the features' window the data covered

    def as_params(self) -> dict[str, object]:
        return {
            "data.first_feature_date": self.first_date,
            "data.last_feature_date": self.last_date,
            "data.rows": self.rows,
            "data.eligible_users": self.eligible,
            "data.train_users": self.train,
            "data.holdout_users": self.holdout,
            "data.history_days": self.history_days,
        }


class NotEnoughUsers(ValueError):
    """A model was asked to train on fewer eligible users than it needs to mean anything."""


def feature_names() -> list[str]:
    """The model input columns, in registry order."""
    return [f.name for f in model_features()]


def eligible_mask(features: pd.DataFrame, rule: EligibilityRule = DEFAULT_ELIGIBILITY) -> pd.Series:
    """True for the rows (users) the models are fitted and scored on."""
    return (
        (features["events_7d"] >= rule.min_events_7d)
        & (features["sessions_7d"] >= rule.min_sessions_7d)
        & (features["active_days_7d"] >= rule.min_active_days_7d)
    )


def eligible(features: pd.DataFrame, rule: EligibilityRule = DEFAULT_ELIGIBILITY) -> pd.DataFrame:
    """The eligible rows of a `user_features` frame, index reset, every column kept."""
    return features.loc[eligible_mask(features, rule)].reset_index(drop=True)


def require_users(n_eligible: int, minimum: int, model: str, rule: EligibilityRule, n_rows: int) -> None:
    """Raise NotEnoughUsers when fewer than `minimum` users are eligible, saying what to change."""
    if n_eligible < minimum:
        raise NotEnoughUsers(
            f"{model}: only {n_eligible} of {n_rows} users are eligible for training (at least {minimum} "
            f"needed; eligibility: >= {rule.min_events_7d} events, >= {rule.min_sessions_7d} sessions and "
            f">= {rule.min_active_days_7d} active days in 7 days). No model was trained or registered: wait "
            "for more feature days or lower the eligibility minimums."
        )


def feature_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """The raw model input columns (registry order, float64), the frame a Pipeline and MLflow signature
    take. Raises KeyError naming the registry features the frame lacks."""
    names = feature_names()
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise KeyError(f"user_features frame lacks the model features {missing}")
    return features[names].astype("float64").reset_index(drop=True)


def registry_transform() -> ColumnTransformer:
    """The registry's per-feature transforms (log1p on heavy-tailed counts, others unchanged) as the
    first Pipeline step. Output columns keep registry order."""
    steps = []
    for f in model_features():
        if f.transform == "log1p":
            steps.append((f.name, FunctionTransformer(np.log1p, feature_names_out="one-to-one"), [f.name]))
        elif f.transform == "none":
            steps.append((f.name, "passthrough", [f.name]))
        else:
            raise ValueError(f"feature {f.name}: unknown transform {f.transform!r}")
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def preprocessing_steps() -> list[tuple[str, object]]:
    """Transforms then scaling, the head of every model Pipeline: after log1p, each feature is
    standardised so that no unit (counts, seconds, shares) dominates a distance or a split."""
    return [("transform", registry_transform()), ("scale", StandardScaler())]


def holdout_mask(user_ids: pd.Series, share: float = 0.2, salt: str = "holdout") -> np.ndarray:
    """True for the users held out from training (about `share` of them), decided by a hash of the
    user id: the same user is on the same side in every run, so a champion and a candidate are compared
    on users neither was fitted on (as long as both used this split)."""
    if not 0 < share < 1:
        raise ValueError(f"holdout share must be within (0, 1), got {share}")
    cut = int(share * 2**32)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(f"{salt}:{u}".encode(), digest_size=4).digest(), "big") < cut
         for u in user_ids),
        dtype=bool,
        count=len(user_ids),
    )


def window_of_rows(features: pd.DataFrame) -> tuple[str, str]:
    """The first and last feature_date of a frame (ISO dates), the training data's partition range."""
    dates = pd.to_datetime(features[KEY_COLUMNS[0]])
    return dates.min().date().isoformat(), dates.max().date().isoformat()
