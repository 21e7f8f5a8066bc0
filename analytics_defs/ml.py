"""The ML and serving area: training and promotion of the two models, and the scoring that publishes
segments, anomaly scores, ML alerts and segment-change insights.

- Training: by itself on each of the last two closed days once its features are final (the sensor
  `model_training_sensor`: a deployment's first hour with history, then every night after the close), or
  on demand from the UI (materialize the training assets, optionally with another feature_date).
- Scoring: today's and yesterday's scores refresh themselves when their features or a champion change
  (automation), never while a run of them is in progress; older days by backfill.
"""

import dagster as dg

from analytics_defs.constants import (
    ANOMALY_CHAMPION,
    ANOMALY_MODEL,
    BATCH_LANE,
    BEHAVIOR_ANOMALY_SCORES,
    ML_TRAINING_JOB,
    SEGMENTATION_CHAMPION,
    SEGMENTATION_MODEL,
    USER_SEGMENTS,
)
from assets.models import anomaly_champion, anomaly_model, segmentation_champion, segmentation_model
from assets.scoring import behavior_anomaly_scores, user_segments
from sensors.model_training import model_training_sensor

ml_training_job = dg.define_asset_job(
    name=ML_TRAINING_JOB,
    selection=dg.AssetSelection.assets(SEGMENTATION_MODEL, SEGMENTATION_CHAMPION, ANOMALY_MODEL, ANOMALY_CHAMPION),
    description="Train both models on a closed day of user features, log and register them in MLflow, and "
    "promote each one whose recorded promotion decision (its no_worse_than_champion check) says promote.",
    tags={"lakehouse/pipeline": "ml", **BATCH_LANE},
)

scoring_automation = dg.AutomationConditionSensorDefinition(
    "scoring_automation",
    target=dg.AssetSelection.assets(USER_SEGMENTS, BEHAVIOR_ANOMALY_SCORES),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=BATCH_LANE,
    description="Scores the latest days again when their features or a champion change.",
)

defs = dg.Definitions(
    assets=[segmentation_model, segmentation_champion, anomaly_model, anomaly_champion, user_segments,
            behavior_anomaly_scores],
    jobs=[ml_training_job],
    sensors=[model_training_sensor, scoring_automation],
)
