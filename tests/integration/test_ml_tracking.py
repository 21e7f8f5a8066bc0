"""ml/tracking.py against a real MLflow server on the test PostgreSQL store: training runs with params,
metrics, plots, lineage tags and the model (signature, input example), registered versions, the
`champion` alias moved only when the promotion rule says so, and `models:/<name>@champion` loaded back
with its segment names / threshold."""

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient

from bench.ml_data import synthetic_features
from ml import anomaly, segmentation, tracking
from ml.matrix import NotEnoughUsers, eligible, feature_matrix, feature_names
from ml.naming import segment_names
from ml.promotion import compare_anomaly, compare_segmentation, shuffled_copy
from resources.mlflow import TAG_DAGSTER_ASSET, TAG_DAGSTER_PARTITION, TAG_DAGSTER_RUN_ID

pytestmark = pytest.mark.integration

TAGS = {TAG_DAGSTER_RUN_ID: "run-ml-1", TAG_DAGSTER_ASSET: "segmentation_model", TAG_DAGSTER_PARTITION: "2026-11-26"}


@pytest.fixture(scope="module")
def run():
    return synthetic_features(3000, seed=21, drift_share=0.01, scenario_users=1000)


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def test_segmentation_runs_are_registered_and_only_a_model_as_good_takes_the_champion_alias(mlflow_uri, run):
    client = MlflowClient(mlflow_uri)
    first = segmentation.train_segmentation(run.features, personas=run.personas)
    logged = tracking.log_segmentation(mlflow_uri, first, tags=TAGS, extra_metrics={"eval.note": float("nan")})
    assert first.version == logged.version
    info = client.get_run(logged.run_id)
    assert client.get_experiment(info.info.experiment_id).name == "user_segments_kmeans"
    assert {k: info.data.tags[k] for k in TAGS} == TAGS
    params = info.data.params
    assert params["k"] == "5" and params["data.first_feature_date"] == "2026-11-26"
    assert params["data.rows"] == "4000" and params["data.eligible_users"] == str(first.training.eligible)
    assert params["eligibility.min_active_days_7d"] == "2" and params["features"] == ",".join(feature_names())
    assert info.data.metrics["train.ari_personas"] > 0.9 and "eval.note" not in info.data.metrics
    assert {"features.json", "segments.json", "segment_profiles.png"} <= _artifacts(client, logged.run_id)
    model_info = mlflow.models.get_model_info(logged.uri)
    assert model_info.signature.inputs.input_names() == feature_names()
    assert model_info.metadata["segment_names"] == {str(k): v for k, v in first.names.items()}

    # a champion exists (this test's first version), whatever ran before on this server
    tracking.set_champion(mlflow_uri, "user_segments_kmeans", logged.version)
    noise = shuffled_copy(feature_matrix(eligible(run.features)), seed=1)
    pipeline = segmentation.build_pipeline().fit(noise)
    worse = segmentation.SegmentationModel(pipeline, segment_names(segmentation.centroid_profiles(pipeline)),
                                           params=first.params, training=first.training, example=first.example)
    worse_logged = tracking.log_segmentation(mlflow_uri, worse, tags=TAGS)
    champion = tracking.load_segmentation(mlflow_uri)
    decision = compare_segmentation(worse, champion, run.features)
    assert not decision.promote and decision.champion_version == logged.version
    assert not tracking.apply_promotion(mlflow_uri, decision)
    assert tracking.champion_version(mlflow_uri, "user_segments_kmeans") == logged.version
    tags = client.get_model_version("user_segments_kmeans", worse_logged.version).tags
    assert tags["promotion.promote"] == "False" and float(tags["promotion.champion_value"]) > float(
        tags["promotion.candidate_value"])

    retrained = segmentation.train_segmentation(run.features, seed=1, personas=run.personas)
    again = tracking.log_segmentation(mlflow_uri, retrained, tags=TAGS)
    decision = compare_segmentation(retrained, tracking.load_segmentation(mlflow_uri), run.features)
    assert decision.promote and tracking.apply_promotion(mlflow_uri, decision)
    assert tracking.champion_version(mlflow_uri, "user_segments_kmeans") == again.version
    # runs of the model are comparable side by side: the same metric names
    assert set(client.get_run(again.run_id).data.metrics) == set(info.data.metrics)

    loaded = mlflow.sklearn.load_model("models:/user_segments_kmeans@champion")
    matrix = feature_matrix(eligible(run.features))
    np.testing.assert_array_equal(loaded.predict(matrix), retrained.pipeline.predict(matrix))
    named = tracking.load_segmentation(mlflow_uri)
    assert named.version == again.version and named.names == retrained.names and named.rule == retrained.rule
    labels, _ = named.assign(matrix)
    assert {named.names[s] for s in labels} == set(retrained.names.values())


def test_anomaly_runs_log_the_threshold_choice_and_a_degenerate_forest_is_refused(mlflow_uri, run):
    client = MlflowClient(mlflow_uri)
    first = anomaly.train_anomaly(run.features, drifting=run.drifting)
    logged = tracking.log_anomaly(mlflow_uri, first, tags={**TAGS, TAG_DAGSTER_ASSET: "anomaly_model"})
    info = client.get_run(logged.run_id)
    assert client.get_experiment(info.info.experiment_id).name == "user_anomaly_iforest"
    assert info.data.tags["threshold.reason"] == first.threshold.reason
    assert info.data.params["threshold.configured"] == "0.8" and info.data.params["max_samples"] == str(
        first.params["max_samples"])
    assert info.data.metrics["holdout.threshold_chosen"] == pytest.approx(first.threshold.chosen)
    assert info.data.metrics["train.roc_auc"] > 0.8
    assert {"features.json", "threshold.json", "score_histogram.png"} <= _artifacts(client, logged.run_id)

    tracking.set_champion(mlflow_uri, "user_anomaly_iforest", logged.version)
    broken = anomaly.AnomalyModel(
        anomaly.build_pipeline(n_estimators=5, max_samples=4).fit(
            shuffled_copy(feature_matrix(eligible(run.features)), seed=2)),
        first.threshold, params=first.params, training=first.training, example=first.example)
    tracking.log_anomaly(mlflow_uri, broken)
    decision = compare_anomaly(broken, tracking.load_anomaly(mlflow_uri), run.features)
    assert not tracking.apply_promotion(mlflow_uri, decision)
    assert tracking.champion_version(mlflow_uri, "user_anomaly_iforest") == logged.version

    champion = tracking.load_anomaly(mlflow_uri)
    matrix = feature_matrix(eligible(run.features))
    np.testing.assert_allclose(champion.score(matrix), first.score(matrix))
    assert champion.threshold == first.threshold and champion.version == logged.version
    forest = mlflow.sklearn.load_model("models:/user_anomaly_iforest@champion")
    np.testing.assert_allclose(-forest.score_samples(matrix), first.score(matrix))
    assert champion.standout_features(matrix.head(3)) == first.standout_features(matrix.head(3))


def test_too_few_users_fail_before_anything_is_logged(mlflow_uri, run):
    client = MlflowClient(mlflow_uri)
    versions_before = len(client.search_model_versions("name='user_segments_kmeans'"))
    with pytest.raises(NotEnoughUsers, match="No model was trained or registered"):
        tracking.log_segmentation(mlflow_uri, segmentation.train_segmentation(run.features.head(100)))
    assert len(client.search_model_versions("name='user_segments_kmeans'")) == versions_before
    assert tracking.load_segmentation(mlflow_uri, ref="no-such-alias") is None
