"""ml/promotion.py: the champion rule, and the held-out metrics that tell a good model from a worse one."""

import math

import pytest

from bench.ml_data import synthetic_features
from ml import anomaly, segmentation
from ml.matrix import eligible, feature_matrix
from ml.naming import segment_names
from ml.promotion import (
    ANOMALY_METRIC,
    SEGMENTATION_METRIC,
    compare_anomaly,
    compare_segmentation,
    decide,
    shuffled_copy,
)

pytestmark = pytest.mark.unit


def test_without_a_champion_the_candidate_is_promoted():
    d = decide("m", "heldout_silhouette", 0.3, None, 0.02, candidate_version="1")
    assert d.promote and d.champion_value is None and "no champion yet" in d.reason
    assert d.as_metadata() == {"model_name": "m", "metric": "heldout_silhouette", "candidate_value": 0.3,
                               "tolerance": 0.02, "higher_is_better": True, "promote": True, "reason": d.reason,
                               "candidate_version": "1"}


@pytest.mark.parametrize(("candidate", "champion", "promote"), [
    (0.50, 0.40, True),  # better
    (0.40, 0.40, True),  # equal
    (0.385, 0.40, True),  # worse, within the tolerance
    (0.37, 0.40, False),  # worse beyond it
])
def test_the_candidate_must_be_no_worse_than_the_champion_within_the_tolerance(candidate, champion, promote):
    d = decide("m", "x", candidate, champion, tolerance=0.02, candidate_version="2", champion_version="1")
    assert d.promote is promote
    assert (d.candidate_value, d.champion_value, d.champion_version) == (candidate, champion, "1")
    assert f"{candidate:.4f}" in d.reason and f"{champion:.4f}" in d.reason
    assert ("no worse than" in d.reason) is promote


def test_lower_is_better_metrics_and_missing_figures():
    assert decide("m", "loss", 0.9, 1.0, 0.02, higher_is_better=False).promote
    assert not decide("m", "loss", 1.1, 1.0, 0.02, higher_is_better=False).promote
    nan = decide("m", "x", math.nan, 0.4, 0.02)
    assert not nan.promote and "could not be computed" in nan.reason
    assert decide("m", "x", 0.3, math.nan, 0.02).promote


@pytest.fixture(scope="module")
def run():
    return synthetic_features(2500, seed=3, drift_share=0.01, scenario_users=500)


def test_a_segmentation_fitted_on_shuffled_features_does_not_take_the_alias(run):
    champion = segmentation.train_segmentation(run.features)
    champion.version = "1"
    same = compare_segmentation(champion, champion, run.features)
    assert same.promote and same.candidate_value == same.champion_value and same.metric == SEGMENTATION_METRIC
    noise = shuffled_copy(feature_matrix(eligible(run.features)), seed=1)
    pipeline = segmentation.build_pipeline().fit(noise)
    worse = segmentation.SegmentationModel(pipeline, segment_names(segmentation.centroid_profiles(pipeline)),
                                           version="2")
    refused = compare_segmentation(worse, champion, run.features)
    assert not refused.promote
    assert refused.candidate_value < refused.champion_value - refused.tolerance
    assert (refused.candidate_version, refused.champion_version) == ("2", "1")
    assert compare_segmentation(champion, worse, run.features).promote


def test_a_degenerate_anomaly_model_does_not_take_the_alias(run):
    champion = anomaly.train_anomaly(run.features)
    worse = anomaly.AnomalyModel(anomaly.build_pipeline(n_estimators=5, max_samples=4).fit(
        shuffled_copy(feature_matrix(eligible(run.features)), seed=2)), champion.threshold)
    refused = compare_anomaly(worse, champion, run.features)
    assert refused.metric == ANOMALY_METRIC and not refused.promote
    assert 0.5 < refused.champion_value <= 1 and refused.candidate_value < refused.champion_value - 0.02
    retrained = anomaly.train_anomaly(run.features, seed=1)
    assert compare_anomaly(retrained, champion, run.features).promote  # a new seed is not "worse"


def test_a_trusted_candidate_replaces_a_champion_on_probation(run):
    """A champion trained on less than a whole window raises no alert: a trusted candidate takes over even
    when its held-out figure is lower; the other way round, the figures decide as always."""
    trusted = anomaly.train_anomaly(run.features)
    on_probation = anomaly.train_anomaly(run.features, seed=1)
    on_probation.history_days = 3.0

    def degenerate(history_days):
        return anomaly.AnomalyModel(anomaly.build_pipeline(n_estimators=5, max_samples=4).fit(
            shuffled_copy(feature_matrix(eligible(run.features)), seed=2)), trusted.threshold,
            history_days=history_days)

    takes_over = compare_anomaly(degenerate(7.0), on_probation, run.features)
    assert takes_over.promote and "on probation" in takes_over.reason
    assert takes_over.candidate_value < takes_over.champion_value - 0.02
    assert not compare_anomaly(degenerate(3.0), trusted, run.features).promote
    assert not compare_anomaly(degenerate(3.0), on_probation, run.features).promote
