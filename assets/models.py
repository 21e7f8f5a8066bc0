"""The models: KMeans segments and IsolationForest anomalies, trained on one day of user features,
logged and registered in MLflow, and promoted to `@champion` only past a blocking check.

Each training asset logs an MLflow run (params, metrics, the model with signature and input example,
the feature list, the features day and its 7-day event window, plots, the Dagster run, asset and day as
tags) and registers a new version; its blocking check `no_worse_than_champion` compares the candidate
with the current champion on held-out users (both figures in the check's metadata). Only when it passes
does the champion asset downstream move the alias, so a worse model never serves. The modelling itself
(eligibility, features, naming, threshold rule, promotion rule) is plain Python in ml/.
"""


import math
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from analytics_defs.constants import (
    ANOMALY_CHAMPION,
    ANOMALY_MODEL,
    SEGMENTATION_CHAMPION,
    SEGMENTATION_MODEL,
    USER_FEATURES,
    USER_FEATURES_TABLE,
)
from assets.delta import read_day
from ml import defaults
from ml.defaults import DEFAULT_ELIGIBILITY, EligibilityRule
from ml.features import WINDOW_DAYS
from resources.mlflow import TAG_DAGSTER_ASSET, TAG_DAGSTER_PARTITION, TAG_DAGSTER_RUN_ID, MLflowResource
from resources.truth import GroundTruthResource
from resources.warehouse import WarehouseResource

NO_WORSE_THAN_CHAMPION = "no_worse_than_champion"
# The modelling stack (scikit-learn, MLflow) is imported when an asset runs, not when the code location
# loads: every Dagster process loads the code location, and only training and scoring need it.


class TrainingConfig(dg.Config):
    feature_date: str | None = None
    """Features day to train on (YYYY-MM-DD); default: yesterday, the last day the nightly run closed."""
    k: int = defaults.DEFAULT_K
    """Segments of the KMeans model."""
    threshold: float = defaults.DEFAULT_THRESHOLD
    """Configured anomaly threshold on the paper's score s(x, n) in (0, 1] (ml/README.md: how the
    deployed threshold is chosen from validation data when this one flags nobody or too many)."""
    alert_share: float = defaults.DEFAULT_ALERT_SHARE
    """The most a day's eligible users may become alerts, as a share."""
    trees: int = defaults.DEFAULT_TREES
    """Trees of the IsolationForest."""
    max_samples: int = defaults.DEFAULT_MAX_SAMPLES
    """Users drawn to grow each tree."""
    min_users: int = defaults.MIN_TRAINING_USERS
    """Fewer eligible training users than this fail the run instead of registering a useless model."""
    min_events_7d: int = DEFAULT_ELIGIBILITY.min_events_7d
    """Eligibility: events a user needs in the 7 days to be modelled (ml/README.md)."""
    min_sessions_7d: int = DEFAULT_ELIGIBILITY.min_sessions_7d
    min_active_days_7d: int = DEFAULT_ELIGIBILITY.min_active_days_7d
    """Lower to 1 on a deployment's first day, when nobody can have two active days yet."""

    @property
    def rule(self) -> EligibilityRule:
        return EligibilityRule(self.min_events_7d, self.min_sessions_7d, self.min_active_days_7d)
    seed: int = 0


def training_day(config: TrainingConfig) -> date:
    if config.feature_date:
        return date.fromisoformat(config.feature_date)
    return (datetime.now(UTC) - timedelta(days=1)).date()


def _features(warehouse: WarehouseResource, day: date):
    features = read_day(warehouse.table_path(USER_FEATURES_TABLE), "feature_date", day)
    if features.empty:
        raise dg.Failure(f"no user_features for {day}: materialize that day of user_features first, or set "
                         "feature_date in the run config to a day that has features")
    return features


@contextmanager
def _enough_users():
    """Too few eligible users: fail the run with the model's own explanation (nothing was registered)."""
    from ml.matrix import NotEnoughUsers

    try:
        yield
    except NotEnoughUsers as exc:
        raise dg.Failure(str(exc)) from None


def _tags(context: dg.AssetExecutionContext, day: date) -> dict[str, str]:
    return {TAG_DAGSTER_RUN_ID: context.run.run_id, TAG_DAGSTER_ASSET: context.asset_key.to_user_string(),
            TAG_DAGSTER_PARTITION: day.isoformat()}


def _lineage(day: date, rows: int, eligible: int) -> dict:
    return {"feature_date": day.isoformat(),
            "event_window": f"{day - timedelta(days=WINDOW_DAYS - 1)}..{day}",
            "feature_rows": rows, "eligible_users": eligible}


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics fit for metadata: a metric that could not be computed (NaN) is left out."""
    return {k: float(v) for k, v in metrics.items() if not math.isnan(v)}


def _no_worse(decision) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=NO_WORSE_THAN_CHAMPION, passed=decision.promote,
                               metadata={k: v for k, v in decision.as_metadata().items() if v is not None})


def _check(key: dg.AssetKey, metric: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(NO_WORSE_THAN_CHAMPION, asset=key, blocking=True,
                             description=f"The candidate's held-out {metric} is no worse than the current champion's "
                             "(within the tolerance of ml/promotion.py); only then is it promoted.")


@dg.asset(
    key=SEGMENTATION_MODEL,
    description="KMeans user segments (named from their centroid profiles), trained on one day of user "
    "features; every training is an MLflow run and a new registered version of user_segments_kmeans.",
    group_name="ml",
    kinds={"scikitlearn", "mlflow"},
    deps=[USER_FEATURES],
    check_specs=[_check(SEGMENTATION_MODEL, "silhouette")],
)
def segmentation_model(context: dg.AssetExecutionContext, config: TrainingConfig, mlflow: MLflowResource,
                       warehouse: WarehouseResource, truth: GroundTruthResource):
    from ml import segmentation, tracking
    from ml.promotion import compare_segmentation

    day = training_day(config)
    features = _features(warehouse, day)
    champion = tracking.load_segmentation(mlflow.tracking_uri)
    with _enough_users():
        model = segmentation.train_segmentation(features, k=config.k, seed=config.seed, rule=config.rule,
                                                min_users=config.min_users, personas=truth.personas())
    logged = tracking.log_segmentation(mlflow.tracking_uri, model, tags=_tags(context, day))
    decision = compare_segmentation(model, champion, features)
    tracking.record_decision(mlflow.tracking_uri, decision, logged.version)
    yield dg.MaterializeResult(metadata={
        "model_name": logged.model_name, "model_version": logged.version, "mlflow_run_id": logged.run_id,
        **_lineage(day, len(features), model.training.eligible if model.training else 0),
        "segments": dg.MetadataValue.json({str(k): v for k, v in model.names.items()}),
        **_finite(model.metrics),
    })
    yield _no_worse(decision)


@dg.asset(
    key=ANOMALY_MODEL,
    description="IsolationForest behaviour anomalies on per-peer-group feature residuals, trained on one day "
    "of user features; the score is the original paper's s(x, n) in (0, 1]; every training is an MLflow run "
    "and a new registered version of user_anomaly_iforest.",
    group_name="ml",
    kinds={"scikitlearn", "mlflow"},
    deps=[USER_FEATURES],
    check_specs=[_check(ANOMALY_MODEL, "separation of real from shuffled users")],
)
def anomaly_model(context: dg.AssetExecutionContext, config: TrainingConfig, mlflow: MLflowResource,
                  warehouse: WarehouseResource, truth: GroundTruthResource):
    from ml import anomaly, tracking
    from ml.promotion import compare_anomaly

    day = training_day(config)
    features = _features(warehouse, day)
    champion = tracking.load_anomaly(mlflow.tracking_uri)
    with _enough_users():
        model = anomaly.train_anomaly(features, threshold=config.threshold, alert_share=config.alert_share,
                                      n_estimators=config.trees, max_samples=config.max_samples,
                                      rule=config.rule, min_users=config.min_users, seed=config.seed,
                                      drifting=truth.drifting_users())
    logged = tracking.log_anomaly(mlflow.tracking_uri, model, tags=_tags(context, day))
    decision = compare_anomaly(model, champion, features)
    tracking.record_decision(mlflow.tracking_uri, decision, logged.version)
    yield dg.MaterializeResult(metadata={
        "model_name": logged.model_name, "model_version": logged.version, "mlflow_run_id": logged.run_id,
        **_lineage(day, len(features), model.training.eligible if model.training else 0),
        "threshold_configured": model.threshold.configured, "threshold_deployed": model.threshold.chosen,
        "threshold_rule": model.threshold.reason,
        **_finite(model.metrics),
    })
    yield _no_worse(decision)


def _promote(context: dg.AssetExecutionContext, mlflow: MLflowResource, candidate: dg.AssetKey, name: str):
    """Move @champion to the version the candidate asset registered in this run (its check passed)."""
    from ml import tracking

    event = context.instance.get_latest_materialization_event(candidate)
    version = str(event.asset_materialization.metadata["model_version"].value)
    previous = tracking.champion_version(mlflow.tracking_uri, name)
    tracking.set_champion(mlflow.tracking_uri, name, version)
    return dg.MaterializeResult(metadata={"model_name": name, "champion_version": version,
                                          "previous_champion": previous or "none",
                                          "model_uri": f"models:/{name}@{tracking.CHAMPION_ALIAS}"})


@dg.asset(key=SEGMENTATION_CHAMPION, deps=[SEGMENTATION_MODEL], group_name="ml", kinds={"mlflow"},
          description="The serving segmentation: models:/user_segments_kmeans@champion, moved to a new version "
          "only after its no_worse_than_champion check passed.")
def segmentation_champion(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
    return _promote(context, mlflow, SEGMENTATION_MODEL, defaults.SEGMENTATION_MODEL)


@dg.asset(key=ANOMALY_CHAMPION, deps=[ANOMALY_MODEL], group_name="ml", kinds={"mlflow"},
          description="The serving anomaly model: models:/user_anomaly_iforest@champion, moved to a new version "
          "only after its no_worse_than_champion check passed.")
def anomaly_champion(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
    return _promote(context, mlflow, ANOMALY_MODEL, defaults.ANOMALY_MODEL)
