"""The models: KMeans segments and IsolationForest anomalies, trained on one closed day of user features,
logged and registered in MLflow, and promoted to `@champion` only on a recorded decision to promote.

Each training asset logs an MLflow run (params, metrics, the model with signature and input example,
the feature list, the features day and its 7-day event window, plots, the Dagster run, asset and day as
tags), registers a new version and records on it the promotion decision (`promotion.*` tags): the
candidate against the current champion on held-out users. Its blocking check `no_worse_than_champion`
shows that decision and stops the champion step of the same run when it says no; the champion asset
itself moves the alias only to a version whose recorded decision says promote, so materialising it on
its own after a refused candidate changes nothing and says why. The modelling itself (eligibility,
features, naming, threshold rule, promotion rule) is plain Python in ml/.

The training runs by itself (sensors/model_training.py): for each of the last two closed days once its
features are final, oldest first, so a new deployment with a week of history has two runs of each model
to compare in MLflow within its first hour.
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
from assets.featurize import closed_feature_days
from ml import defaults
from ml.defaults import DEFAULT_ELIGIBILITY, WINDOW_DAYS, EligibilityRule
from ml.features import history_days
from resources.mlflow import TAG_DAGSTER_ASSET, TAG_DAGSTER_PARTITION, TAG_DAGSTER_RUN_ID, MLflowResource
from resources.truth import GroundTruthResource
from resources.warehouse import WarehouseResource

NO_WORSE_THAN_CHAMPION = "no_worse_than_champion"
# The modelling stack (scikit-learn, MLflow) is imported when an asset runs, not when the code location
# loads: every Dagster process loads the code location, and only training and scoring need it.


class TrainingConfig(dg.Config):
    feature_date: str | None = None
    """Features day to train on (YYYY-MM-DD); default: the latest closed day whose features exist."""
    k: int = defaults.DEFAULT_K
    """Segments of the KMeans model."""
    threshold: float = defaults.DEFAULT_THRESHOLD
    """Configured anomaly threshold on the paper's score s(x, n) in (0, 1] (ml/README.md: how the
    deployed threshold is chosen from validation data when this one flags nobody or too many)."""
    alert_share: float = defaults.DEFAULT_ALERT_SHARE
    """The most a day's eligible users may become alerts, as a share (every scoring is capped to it)."""
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
    """Lowered by itself to the days of data there are, on a deployment younger than a week."""
    seed: int = 0

    def rule(self, history_days: float) -> EligibilityRule:
        return EligibilityRule(self.min_events_7d, self.min_sessions_7d, self.min_active_days_7d).for_history(history_days)


def training_day(config: TrainingConfig, warehouse: WarehouseResource) -> date:
    if config.feature_date:
        return date.fromisoformat(config.feature_date)
    closed = closed_feature_days(warehouse.table_path(USER_FEATURES_TABLE))
    if not closed:
        raise dg.Failure("no closed day of user_features yet: a day's features are final once it is over "
                         f"(00:00 UTC, rebuilt by the nightly close at 01:00); {_first_close()}, or set "
                         "feature_date in the run config to train on an open day")
    return closed[-1]


def _first_close() -> str:
    today = datetime.now(UTC).date()
    return f"the first one here will be {today.isoformat()}, trained automatically after {today + timedelta(days=1)} 01:00 UTC"


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


def _lineage(day: date, features, eligible: int) -> dict:
    return {"feature_date": day.isoformat(),
            "event_window": f"{day - timedelta(days=WINDOW_DAYS - 1)}..{day}",
            "history_days": history_days(features),
            "feature_rows": len(features), "eligible_users": eligible}


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

    day = training_day(config, warehouse)
    features = _features(warehouse, day)
    champion = tracking.load_segmentation(mlflow.tracking_uri)
    with _enough_users():
        model = segmentation.train_segmentation(features, k=config.k, seed=config.seed,
                                                rule=config.rule(history_days(features)),
                                                min_users=config.min_users, personas=truth.personas())
    logged = tracking.log_segmentation(mlflow.tracking_uri, model, tags=_tags(context, day))
    decision = compare_segmentation(model, champion, features)
    tracking.record_decision(mlflow.tracking_uri, decision, logged.version)
    yield dg.MaterializeResult(metadata={
        "model_name": logged.model_name, "model_version": logged.version, "mlflow_run_id": logged.run_id,
        **_lineage(day, features, model.training.eligible if model.training else 0),
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

    day = training_day(config, warehouse)
    features = _features(warehouse, day)
    champion = tracking.load_anomaly(mlflow.tracking_uri)
    with _enough_users():
        model = anomaly.train_anomaly(features, threshold=config.threshold, alert_share=config.alert_share,
                                      n_estimators=config.trees, max_samples=config.max_samples,
                                      rule=config.rule(history_days(features)), min_users=config.min_users,
                                      seed=config.seed, drifting=truth.drifting_users())
    logged = tracking.log_anomaly(mlflow.tracking_uri, model, tags=_tags(context, day))
    decision = compare_anomaly(model, champion, features)
    tracking.record_decision(mlflow.tracking_uri, decision, logged.version)
    yield dg.MaterializeResult(metadata={
        "model_name": logged.model_name, "model_version": logged.version, "mlflow_run_id": logged.run_id,
        **_lineage(day, features, model.training.eligible if model.training else 0),
        "threshold_configured": model.threshold.configured, "threshold_deployed": model.threshold.chosen,
        "threshold_rule": model.threshold.reason,
        "alerts": "trusted" if model.trusted else f"probation: trained on {model.history_days:.1f} of "
                  f"{WINDOW_DAYS} days of data (raises alerts once a model trained on a whole window is champion)",
        **_finite(model.metrics),
    })
    yield _no_worse(decision)


def _promote(context: dg.AssetExecutionContext, mlflow: MLflowResource, candidate: dg.AssetKey, name: str):
    """Move @champion to the version the candidate asset registered last, if the decision recorded on that
    version says promote; fail naming the decision otherwise (the alias stays where it is)."""
    from ml import tracking

    event = context.instance.get_latest_materialization_event(candidate)
    if event is None or "model_version" not in event.asset_materialization.metadata:
        raise dg.Failure(f"no candidate of {name} yet: materialize {candidate.to_user_string()} first")
    version = str(event.asset_materialization.metadata["model_version"].value)
    previous = tracking.champion_version(mlflow.tracking_uri, name)
    decision = tracking.recorded_decision(mlflow.tracking_uri, name, version)
    if decision is None:
        raise dg.Failure(f"{name} version {version} has no recorded promotion decision: train it through "
                         f"{candidate.to_user_string()}; @champion stays at {previous or 'none'}")
    if decision.get("promote") != "True":
        raise dg.Failure(f"{name} version {version} is not promoted: {decision.get('reason', 'no reason recorded')}; "
                         f"@champion stays at version {previous or 'none'}")
    if previous != version:
        tracking.set_champion(mlflow.tracking_uri, name, version)
    return dg.MaterializeResult(metadata={"model_name": name, "champion_version": version,
                                          "previous_champion": previous or "none",
                                          "decision": decision.get("reason", ""),
                                          "model_uri": f"models:/{name}@{tracking.CHAMPION_ALIAS}"})


@dg.asset(key=SEGMENTATION_CHAMPION, deps=[SEGMENTATION_MODEL], group_name="ml", kinds={"mlflow"},
          description="The serving segmentation: models:/user_segments_kmeans@champion, moved only to a version "
          "whose recorded promotion decision (its no_worse_than_champion check) says promote.")
def segmentation_champion(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
    return _promote(context, mlflow, SEGMENTATION_MODEL, defaults.SEGMENTATION_MODEL)


@dg.asset(key=ANOMALY_CHAMPION, deps=[ANOMALY_MODEL], group_name="ml", kinds={"mlflow"},
          description="The serving anomaly model: models:/user_anomaly_iforest@champion, moved only to a version "
          "whose recorded promotion decision (its no_worse_than_champion check) says promote.")
def anomaly_champion(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
    return _promote(context, mlflow, ANOMALY_MODEL, defaults.ANOMALY_MODEL)
