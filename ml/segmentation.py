"""User segments: KMeans on the registry features of eligible users, each segment named from its centroid.

The model is one scikit-learn Pipeline (registry transforms, standard scaling, KMeans), so the MLflow
artifact takes the raw `user_features` columns. Segment names (ml.naming) and the eligibility rule
travel with it (`SegmentationModel`, stored as MLflow model metadata by ml.tracking).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score
from sklearn.pipeline import Pipeline

from ml.defaults import DEFAULT_K, MIN_TRAINING_USERS, SEGMENTATION_MODEL
from ml.features import history_days
from ml.matrix import (
    DEFAULT_ELIGIBILITY,
    EligibilityRule,
    TrainingData,
    eligible,
    feature_matrix,
    feature_names,
    holdout_mask,
    preprocessing_steps,
    require_users,
    window_of_rows,
)
from ml.naming import segment_names

MODEL_NAME = SEGMENTATION_MODEL
SILHOUETTE_SAMPLE = 10_000  # silhouette is O(n^2): on 100k users it is estimated on a seeded sample


@dataclass
class SegmentationModel:
    """A fitted segmentation: the pipeline, a name per segment id, and the rule that chose its users."""

    pipeline: Pipeline
    names: dict[int, str]
    rule: EligibilityRule = DEFAULT_ELIGIBILITY
    params: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training: TrainingData | None = None
    version: str | None = None  # the registry version, once logged or loaded
    example: pd.DataFrame | None = None  # a few training rows: the MLflow input example

    @property
    def k(self) -> int:
        return int(self.pipeline.named_steps["model"].n_clusters)

    def profiles(self) -> pd.DataFrame:
        """Centroids in z units (segments x features): what the names are derived from."""
        return centroid_profiles(self.pipeline)

    def assign(self, matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Segment id and Euclidean distance to its centroid (in the scaled space) for each row."""
        return assign(self.pipeline, matrix)


def build_pipeline(k: int = DEFAULT_K, seed: int = 0, n_init: int = 4) -> Pipeline:
    """Registry transforms, scaling, KMeans. n_init > 1 so a poor random start does not decide the
    segments; k-means++ seeding with `seed` keeps retraining on the same data reproducible."""
    return Pipeline([*preprocessing_steps(), ("model", KMeans(n_clusters=k, n_init=n_init, random_state=seed))])


def centroid_profiles(pipeline: Pipeline) -> pd.DataFrame:
    """KMeans centroids as a frame: one row per segment id, one column per model feature, z units."""
    centers = pipeline.named_steps["model"].cluster_centers_
    return pd.DataFrame(centers, columns=feature_names(), index=pd.RangeIndex(len(centers), name="segment_id"))


def transformed(pipeline: Pipeline, matrix: pd.DataFrame) -> np.ndarray:
    """Rows in the space KMeans works in (after the transforms and scaling)."""
    return pipeline[:-1].transform(matrix)


def assign(pipeline: Pipeline, matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Segment id and distance to that segment's centroid for each row of a raw feature matrix."""
    space = transformed(pipeline, matrix)
    distances = pipeline.named_steps["model"].transform(space)
    labels = distances.argmin(axis=1)
    return labels, distances[np.arange(len(labels)), labels]


def silhouette(space: np.ndarray, labels: np.ndarray, sample: int = SILHOUETTE_SAMPLE, seed: int = 0) -> float:
    """Mean silhouette, on a seeded sample of `sample` rows when there are more (the exact figure is
    quadratic in the rows). NaN when fewer than two segments are populated."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    size = sample if len(labels) > sample else None
    return float(silhouette_score(space, labels, sample_size=size, random_state=seed))


def segmentation_metrics(
    model: SegmentationModel,
    matrix: pd.DataFrame,
    personas: pd.Series | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Quality of the segments on `matrix`: silhouette, Davies-Bouldin (lower is better), inertia per
    user, the size and share of each segment, and the adjusted Rand index against `personas` (aligned
    with the rows; NaN entries ignored) when ground truth is given."""
    space = transformed(model.pipeline, matrix)
    labels, distances = model.assign(matrix)
    populated = len(np.unique(labels))
    metrics = {
        "silhouette": silhouette(space, labels, seed=seed),
        "davies_bouldin": float(davies_bouldin_score(space, labels)) if populated > 1 else float("nan"),
        "inertia_per_user": float(np.mean(distances**2)),
        "segments_populated": float(populated),
    }
    counts = np.bincount(labels, minlength=model.k)
    for segment in range(model.k):
        metrics[f"segment_size.{segment}"] = float(counts[segment])
        metrics[f"segment_share.{segment}"] = float(counts[segment] / len(labels))
    if personas is not None:
        known = personas.notna().to_numpy()
        metrics["ari_personas"] = float(adjusted_rand_score(personas[known].to_numpy(), labels[known]))
    return metrics


def train_segmentation(
    features: pd.DataFrame,
    k: int = DEFAULT_K,
    seed: int = 0,
    rule: EligibilityRule = DEFAULT_ELIGIBILITY,
    holdout_share: float = 0.2,
    min_users: int = MIN_TRAINING_USERS,
    personas: pd.Series | None = None,
) -> SegmentationModel:
    """Fit KMeans on the eligible users outside the hash hold-out, name the segments and measure them
    on both sides (`train.*` and `holdout.*` metrics; the hold-out silhouette is what promotion
    compares). `personas`, indexed by user_id, adds the adjusted Rand index against the truth.

    Raises NotEnoughUsers when fewer than max(min_users, 10 k) eligible users are outside the
    hold-out: fewer than that, the segments would be noise with names on them."""
    users = eligible(features, rule)
    held = holdout_mask(users["user_id"], holdout_share)
    train, holdout = users.loc[~held], users.loc[held]
    require_users(len(train), max(min_users, 10 * k), MODEL_NAME, rule, len(features))
    train_matrix = feature_matrix(train)
    pipeline = build_pipeline(k, seed).fit(train_matrix)
    first, last = window_of_rows(features)
    model = SegmentationModel(
        pipeline=pipeline,
        names=segment_names(centroid_profiles(pipeline)),
        rule=rule,
        params={"k": k, "seed": seed, "n_init": pipeline.named_steps["model"].n_init,
                "holdout_share": holdout_share, "silhouette_sample": SILHOUETTE_SAMPLE, **rule.as_params()},
        training=TrainingData(first, last, len(features), len(users), len(train), len(holdout), history_days(features)),
        example=train_matrix.head(5),
    )
    for side, frame in (("train", train), ("holdout", holdout)):
        if len(frame) < 2:
            continue
        truth = personas.reindex(frame["user_id"]).reset_index(drop=True) if personas is not None else None
        for name, value in segmentation_metrics(model, feature_matrix(frame), truth, seed).items():
            model.metrics[f"{side}.{name}"] = value
    return model
