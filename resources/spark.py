"""Spark with Delta Lake: attach to the Spark Connect server, or build a classic session.

Default: every run attaches to the long-running Spark Connect server (`SPARK_REMOTE=sc://…`), which
costs well under a second, instead of starting its own JVM (several seconds). `SPARK_MASTER` switches to
a classic session (local[*], a standalone master, …) with the same jars and Delta configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

import jvm
from settings import ConfigError

# Session settings shared by the Connect server (stack/services/spark_connect.py) and classic sessions.
DELTA_SESSION_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    # Micro-batches are small and the machine has few cores: the default 200 shuffle partitions
    # would mostly schedule empty tasks.
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    # Delta rebuilds table state in a Spark job after commits; its default of 50 partitions is
    # made for clusters and costs seconds per commit on a few local cores.
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.ui.showConsoleProgress": "false",
}

_CONNECT_SESSIONS: dict[str, SparkSession] = {}  # Spark Connect URL -> this process's session on it


class SparkResource(dg.ConfigurableResource):
    """A Spark session with Delta. Exactly one of `remote` (Spark Connect URL) or `master` is used:
    `master` wins when set, because asking for a classic session is the explicit choice."""

    remote: str | None = None
    master: str | None = None
    jvm_lib_dir: str | None = None  # jars for classic sessions (Kafka source, Delta, JDBC)
    driver_memory: str = "2g"
    app_name: str = "lakehouse"

    def get_session(self) -> SparkSession:
        if self.master:
            return self._classic_session()
        if self.remote:
            # One session per server: pyspark's getOrCreate() returns the process's first session whatever
            # its URL, so a second resource pointed at another server would silently run on the first.
            # The generic builder (not pyspark.sql.connect's) also switches pyspark.sql.functions
            # into Connect mode for this process.
            session = _CONNECT_SESSIONS.get(self.remote)
            if session is None or session.is_stopped:
                session = _CONNECT_SESSIONS[self.remote] = SparkSession.builder.remote(self.remote).create()
            return session
        raise ConfigError(
            "Spark is not configured: set SPARK_REMOTE (e.g. sc://127.0.0.1:15002, the server `make up` starts) "
            "or SPARK_MASTER (e.g. local[2] or spark://host:7077)."
        )

    def _classic_session(self) -> SparkSession:
        # pyspark itself reads these two from the environment: SPARK_REMOTE would make it attach to a
        # Connect server instead, and the marker (inherited from a parent process that attached to Spark
        # Connect) would make it build a Connect session without a URL. A classic session was asked for.
        for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
            os.environ.pop(name, None)
        if not self.jvm_lib_dir:
            raise ConfigError("A classic Spark session needs jvm_lib_dir (LAKEHOUSE_JVM_LIB_DIR).")
        jars = [str(j) for j in jvm.spark_extra_jars(Path(self.jvm_lib_dir))]
        builder = (
            SparkSession.builder.master(self.master)
            .appName(self.app_name)
            .config("spark.api.mode", "classic")
            .config("spark.jars", ",".join(jars))
            .config("spark.driver.extraClassPath", os.pathsep.join(jars))
            .config("spark.driver.memory", self.driver_memory)
        )
        for key, value in DELTA_SESSION_CONF.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
