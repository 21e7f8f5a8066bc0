"""MLflow for the two models, as plain functions over a tracking URI (no Dagster here: the assets pass
their run id, asset key and partition as tags).

- One experiment per model, named like the registered model (`user_segments_kmeans`,
  `user_anomaly_iforest`), so the MLflow UI compares runs of one model side by side: every run of a
  model logs the same param and metric names.
- A training run logs params (model settings, eligibility rule, threshold rule, the training data's
  partition range and row counts), metrics (the `train.*` / `holdout.*` figures of ml.segmentation and
  ml.anomaly, plus any the caller adds, e.g. truth metrics), the Pipeline with signature and input
  example (skops format), the feature list, plots, and registers a new model version.
- What scoring needs besides the Pipeline (segment names, eligibility rule, deployed threshold) is stored as the model's MLflow metadata (in its MLmodel file), so a
  model loaded from `models:/<name>@champion` names segments and scores exactly as trained.
- Promotion uses the alias `champion` only: model stages are deprecated, and
  `transition_model_version_stage` fails on the PostgreSQL store with psycopg 3 (mlflow#24592).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from ml import plots
from ml.anomaly import MODEL_NAME as ANOMALY_MODEL
from ml.anomaly import AnomalyModel, ThresholdChoice
from ml.defaults import WINDOW_DAYS
from ml.features import FEATURES_BY_NAME
from ml.matrix import EligibilityRule, feature_names
from ml.promotion import PromotionDecision
from ml.segmentation import MODEL_NAME as SEGMENTATION_MODEL
from ml.segmentation import SegmentationModel

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "model"
# skops loads only the types it is told to trust: IsolationForest's trees (sklearn.tree._tree.Tree) and our
# own pipeline step. These files are written by this code into our own artifact store.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "ml.anomaly.PeerResiduals", "ml.anomaly.DeviationSummary"]
TAG_PROMOTION_PREFIX = "promotion."


@dataclass(frozen=True)
class LoggedModel:
    """A training run and the model version it registered."""

    model_name: str
    version: str
    run_id: str
    experiment_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(tracking_uri: str, name: str) -> str:
    """The experiment called `name`, created on first use."""
    c = client(tracking_uri)
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return c.create_experiment(name)
    except MlflowException:  # created meanwhile by a concurrent run
        return c.get_experiment_by_name(name).experiment_id


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    """MLflow metrics without the NaN / inf entries (a metric with no value is left out, not logged as
    NaN, so that charts and comparisons only show figures that exist)."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _feature_list() -> dict:
    return {"features": [
        {"name": n, "window": FEATURES_BY_NAME[n].window, "dtype": FEATURES_BY_NAME[n].dtype,
         "transform": FEATURES_BY_NAME[n].transform, "description": FEATURES_BY_NAME[n].description}
        for n in feature_names()
    ]}


def _log_common(model: SegmentationModel | AnomalyModel, tags: dict[str, str] | None,
                extra_metrics: dict[str, float] | None) -> None:
    training = model.training.as_params() if model.training else {}
    mlflow.log_params({**model.params, **training, "features.count": len(feature_names()),
                       "features": ",".join(feature_names())})
    mlflow.log_metrics(_finite({**model.metrics, **(extra_metrics or {})}))
    mlflow.log_dict(_feature_list(), "features.json")
    if tags:
        mlflow.set_tags(tags)


def _log_model(model: SegmentationModel | AnomalyModel, name: str, metadata: dict, trusted: list[str] | None):
    if model.example is None:
        raise ValueError(f"{name}: the model has no input example; log models made by train_segmentation / "
                         "train_anomaly")
    example = model.example
    signature = infer_signature(example, model.pipeline.predict(example))
    return mlflow.sklearn.log_model(
        model.pipeline, name=MODEL_ARTIFACT, signature=signature, input_example=example,
        registered_model_name=name, metadata=metadata, skops_trusted_types=trusted,
    )


def segmentation_metadata(model: SegmentationModel) -> dict:
    return {"segment_names": {str(k): v for k, v in model.names.items()}, "eligibility": asdict(model.rule),
            "features": feature_names()}


def anomaly_metadata(model: AnomalyModel) -> dict:
    return {"threshold": asdict(model.threshold), "eligibility": asdict(model.rule), "features": feature_names(),
            "history_days": model.history_days, "trusted": model.trusted}


def log_segmentation(tracking_uri: str, model: SegmentationModel, tags: dict[str, str] | None = None,
                     extra_metrics: dict[str, float] | None = None, run_name: str | None = None) -> LoggedModel:
    """Log a training run of the segmentation model and register it as a new version of
    `user_segments_kmeans` (no alias: promotion is decided apart). Sets `model.version`."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id(tracking_uri, SEGMENTATION_MODEL), run_name=run_name) as run:
        _log_common(model, tags, extra_metrics)
        sizes = {int(k.removeprefix("train.segment_size.")): int(v) for k, v in model.metrics.items()
                 if k.startswith("train.segment_size.")}
        profiles = model.profiles()
        mlflow.log_dict({str(s): {"name": n, "train_users": sizes.get(s), "profile_z": profiles.loc[s].round(3).to_dict()}
                         for s, n in model.names.items()}, "segments.json")
        fig = plots.segment_profiles_figure(profiles, model.names, sizes or None)
        mlflow.log_figure(fig, "segment_profiles.png")
        info = _log_model(model, SEGMENTATION_MODEL, segmentation_metadata(model), None)
    model.version = str(info.registered_model_version)
    return LoggedModel(SEGMENTATION_MODEL, model.version, run.info.run_id, run.info.experiment_id)


def log_anomaly(tracking_uri: str, model: AnomalyModel, tags: dict[str, str] | None = None,
                extra_metrics: dict[str, float] | None = None, run_name: str | None = None) -> LoggedModel:
    """Log a training run of the anomaly model (with the score histogram of the validation users and
    both thresholds, and the threshold choice with its reason) and register a new version of
    `user_anomaly_iforest`. Sets `model.version`."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id(tracking_uri, ANOMALY_MODEL), run_name=run_name) as run:
        _log_common(model, tags, extra_metrics)
        mlflow.log_dict(asdict(model.threshold), "threshold.json")
        mlflow.set_tag("threshold.reason", model.threshold.reason)
        mlflow.set_tag("alerts", "trusted" if model.trusted else
                       f"probation: trained on {model.history_days:.1f} of {WINDOW_DAYS} days of data, raises no alert")
        if model.validation_scores is not None and len(model.validation_scores):
            fig = plots.score_histogram_figure(model.validation_scores, model.threshold.configured,
                                               model.threshold.chosen, "Anomaly scores of the validation users")
            mlflow.log_figure(fig, "score_histogram.png")
        info = _log_model(model, ANOMALY_MODEL, anomaly_metadata(model), SKOPS_TRUSTED_TYPES)
    model.version = str(info.registered_model_version)
    return LoggedModel(ANOMALY_MODEL, model.version, run.info.run_id, run.info.experiment_id)


def champion_version(tracking_uri: str, model_name: str, alias: str = CHAMPION_ALIAS) -> str | None:
    """The version holding the alias, or None (no such alias, or no such registered model yet)."""
    try:
        registered = client(tracking_uri).get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else str(version)


def set_champion(tracking_uri: str, model_name: str, version: str, alias: str = CHAMPION_ALIAS) -> None:
    client(tracking_uri).set_registered_model_alias(model_name, alias, str(version))


def record_decision(tracking_uri: str, decision: PromotionDecision, version: str | None = None) -> None:
    """Record the decision on the candidate version (tags `promotion.*`: metric, both figures, reason)."""
    version = version or decision.candidate_version
    if version is None:
        raise ValueError("the candidate version is unknown: log the model first or pass `version`")
    c = client(tracking_uri)
    for key, value in decision.as_metadata().items():
        c.set_model_version_tag(decision.model_name, str(version), TAG_PROMOTION_PREFIX + key, str(value))


def recorded_decision(tracking_uri: str, model_name: str, version: str) -> dict[str, str] | None:
    """The promotion decision recorded on a version (`record_decision`'s tags, without their prefix), or
    None when none was recorded."""
    tags = client(tracking_uri).get_model_version(model_name, str(version)).tags
    decision = {k.removeprefix(TAG_PROMOTION_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PROMOTION_PREFIX)}
    return decision or None


def apply_promotion(tracking_uri: str, decision: PromotionDecision, version: str | None = None,
                    alias: str = CHAMPION_ALIAS) -> bool:
    """Record the decision on the candidate version and move the alias to it when the decision says so.
    Returns whether the alias moved."""
    version = version or decision.candidate_version
    record_decision(tracking_uri, decision, version)
    if decision.promote:
        set_champion(tracking_uri, decision.model_name, str(version), alias)
    return decision.promote


def _resolve(tracking_uri: str, model_name: str, ref: str) -> str | None:
    """A version number from an alias or a version number."""
    return ref if ref.isdigit() else champion_version(tracking_uri, model_name, ref)


def load_segmentation(tracking_uri: str, ref: str = CHAMPION_ALIAS) -> SegmentationModel | None:
    """The registered segmentation model at an alias (default `champion`) or version, with its segment
    names and eligibility rule; None if there is none."""
    version = _resolve(tracking_uri, SEGMENTATION_MODEL, ref)
    if version is None:
        return None
    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{SEGMENTATION_MODEL}/{version}"
    meta = mlflow.models.get_model_info(uri).metadata or {}
    return SegmentationModel(
        pipeline=mlflow.sklearn.load_model(uri),
        names={int(k): v for k, v in meta["segment_names"].items()},
        rule=EligibilityRule(**meta["eligibility"]),
        version=version,
    )


def load_anomaly(tracking_uri: str, ref: str = CHAMPION_ALIAS) -> AnomalyModel | None:
    """The registered anomaly model at an alias (default `champion`) or version, with its deployed
    threshold and eligibility rule; None if there is none."""
    version = _resolve(tracking_uri, ANOMALY_MODEL, ref)
    if version is None:
        return None
    mlflow.set_tracking_uri(tracking_uri)
    uri = f"models:/{ANOMALY_MODEL}/{version}"
    meta = mlflow.models.get_model_info(uri).metadata or {}
    return AnomalyModel(
        pipeline=mlflow.sklearn.load_model(uri),
        threshold=ThresholdChoice(**meta["threshold"]),
        rule=EligibilityRule(**meta["eligibility"]),
        version=version,
        history_days=float(meta.get("history_days", 0.0)),  # a model from before this was recorded: untrusted
    )
