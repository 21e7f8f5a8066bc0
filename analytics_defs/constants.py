"""Names of assets, tables and tags: the one place they are spelled."""

import dagster as dg

BRONZE_USER_EVENTS = dg.AssetKey("bronze_user_events")
BRONZE_QUARANTINE = dg.AssetKey("bronze_quarantine")

SILVER_USER_EVENTS = dg.AssetKey("silver_user_events")
USER_FEATURES = dg.AssetKey("user_features")

SEGMENTATION_MODEL = dg.AssetKey("segmentation_model")
SEGMENTATION_CHAMPION = dg.AssetKey("segmentation_champion")
ANOMALY_MODEL = dg.AssetKey("anomaly_model")
ANOMALY_CHAMPION = dg.AssetKey("anomaly_champion")
USER_SEGMENTS = dg.AssetKey("user_segments")
BEHAVIOR_ANOMALY_SCORES = dg.AssetKey("behavior_anomaly_scores")

# Delta table names under the warehouse root
BRONZE_USER_EVENTS_TABLE = "bronze/user_events"
BRONZE_QUARANTINE_TABLE = "bronze/quarantine"
SILVER_USER_EVENTS_TABLE = "silver/user_events"
USER_FEATURES_TABLE = "features/user_features"
SQL_MODELS_ROOT = "models"  # SQL models live at models/<name>

# Materialisation metadata of bronze read by the silver refresh: {"YYYY-MM-DD": rows landed of that event date}
EVENT_DATES_METADATA = "event_dates"
# ... and the event dates outside the event-day partitions (late or replayed data silver cannot take yet)
OUTSIDE_EVENT_DAYS_METADATA = "event_dates_outside_partitions"
# Materialisation metadata of user_features read by the training sensor: True once the day's features are final
FEATURES_CLOSED_METADATA = "closed"

# Run tag of a training run: the features day it trains on
TAG_FEATURE_DATE = "lakehouse/feature_date"
# Run tags set by the Kafka window sensor
TAG_KAFKA_TOPIC = "lakehouse/kafka_topic"
TAG_KAFKA_OFFSETS = "lakehouse/kafka_offsets"  # {"<partition>": [start, end), ...}
# The run queue's lanes (tag_concurrency_limits in dagster.yaml, written by stack/services/dagster.py):
# landing runs never wait behind a long silver, features or training run.
TAG_LANE = "lakehouse/lane"
LANDING_LANE = {TAG_LANE: "landing"}
BATCH_LANE = {TAG_LANE: "batch"}

# Jobs
BRONZE_LANDING_JOB = "bronze_landing_job"
SILVER_REFRESH_JOB = "silver_refresh_job"
DAILY_JOB = "daily_refresh_job"
ML_TRAINING_JOB = "ml_training_job"
