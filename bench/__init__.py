"""Benchmarks that print figures (never asserted in tests); results in bench/RESULTS.md.

Like the tests, they land data of the last days on services of their own, so the code location's
partitions must not start where this checkout's own stack started (./.lakehouse/deployment.json): they
start eight days back unless the environment says otherwise, before anything reads the settings.
"""

import os
from datetime import UTC, datetime, timedelta

os.environ.setdefault("LAKEHOUSE_PARTITIONS_START", (datetime.now(UTC) - timedelta(days=8)).strftime("%Y-%m-%d-00:00"))
os.environ.setdefault("LAKEHOUSE_EVENT_LOOKBACK_DAYS", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as the stack sets it (settings.service_env)
