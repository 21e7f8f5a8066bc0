"""Names of assets, tables and tags: the one place they are spelled."""

import dagster as dg

BRONZE_USER_EVENTS = dg.AssetKey("bronze_user_events")
BRONZE_QUARANTINE = dg.AssetKey("bronze_quarantine")

# Delta table names under the warehouse root
BRONZE_USER_EVENTS_TABLE = "bronze/user_events"
BRONZE_QUARANTINE_TABLE = "bronze/quarantine"

# Run tags set by the Kafka window sensor
TAG_KAFKA_TOPIC = "lakehouse/kafka_topic"
TAG_KAFKA_OFFSETS = "lakehouse/kafka_offsets"  # {"<partition>": [start, end), ...}

# Jobs
BRONZE_LANDING_JOB = "bronze_landing_job"
