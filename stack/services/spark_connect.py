"""Spark Connect: a long-running server in local mode (or on the standalone cluster of spark_cluster.py,
SPARK_CLUSTER=standalone), with the Kafka source and Delta on its classpath (and its executors').

Runs attach to it in well under a second (`SPARK_REMOTE=sc://…`) instead of starting a JVM each. Its
Spark UI (jobs, stages, executors, the Connect sessions) listens on LAKEHOUSE_BIND_HOST:SPARK_UI_PORT; the
dashboard links it and reads its REST API (/api/v1). The UI keeps a bounded history: the server runs for
days and every landing run adds jobs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import requests

import jvm
from resources.spark import DELTA_SESSION_CONF
from settings import ConfigError
from stack.procs import LEAN_G1, ProcessSpec, port_open
from stack.services.base import Service


class SparkConnect(Service):
    name = "spark-connect"

    @property
    def managed(self) -> bool:
        return self.settings.external_spark_remote is None

    def endpoint(self) -> str:
        return self.settings.spark_remote

    @property
    def log4j_config(self) -> Path:
        return self.settings.data_dir / "spark" / "log4j2.properties"

    def spec(self) -> ProcessSpec:
        s = self.settings
        spark_home = jvm.spark_home()
        extra = os.pathsep.join(str(j) for j in jvm.spark_extra_jars(s.jvm_lib_dir))
        java_opts = f"-Djava.net.preferIPv4Stack=true {' '.join(LEAN_G1)} -Dlog4j2.configurationFile={self.log4j_config}"
        conf = {
            **DELTA_SESSION_CONF,
            "spark.driver.extraClassPath": extra,
            "spark.connect.grpc.binding.address": s.host,
            "spark.connect.grpc.binding.port": str(s.spark_connect_port),
            "spark.driver.host": s.host,
            "spark.driver.bindAddress": s.host,
            "spark.ui.enabled": "true",
            "spark.ui.port": str(s.spark_ui_port),
            "spark.ui.retainedJobs": "200",
            "spark.ui.retainedStages": "400",
            "spark.ui.retainedTasks": "20000",
            "spark.sql.ui.retainedExecutions": "100",
            "spark.sql.connect.ui.retainedSessions": "50",
            "spark.sql.connect.ui.retainedStatements": "200",
            "spark.sql.warehouse.dir": str(s.data_dir / "warehouse" / "spark-warehouse"),
            "spark.local.dir": str(s.data_dir / "spark" / "tmp"),
            "spark.driver.extraJavaOptions": java_opts,
            # A full collection every minute (Spark's own System.gc(), default every 30): a landing run
            # every minute leaves G1 no idle minute for its periodic collection, and the old generation
            # filled with dead objects to 1.1 GB over a live ~300 MB; one full collection took the driver
            # from 1,584 to 916 MB; each took 0.29 s on average (bench/RESULTS.md).
            "spark.cleaner.periodicGC.interval": "1min",
        }
        master = f"local[{s.spark_local_cores}]"
        if s.spark_cluster == "standalone":
            master = s.spark_cluster_url
            conf |= {
                # executors run in the worker's JVMs: they read Kafka and write Delta, so they need the same jars
                "spark.executor.extraClassPath": extra,
                "spark.executor.memory": s.spark_executor_memory,
                "spark.executor.extraJavaOptions": java_opts,
                "spark.executor.logs.rolling.strategy": "size",
                "spark.executor.logs.rolling.maxSize": str(16 * 1024 * 1024),
                "spark.executor.logs.rolling.maxRetainedFiles": "3",
            }
        argv = [
            str(spark_home / "bin" / "spark-submit"),
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "lakehouse-spark-connect",
            "--master", master,
            "--driver-memory", s.spark_driver_memory,
        ]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        argv.append("spark-internal")
        return ProcessSpec(
            name=self.name,
            argv=argv,
            # the web UI binds to SPARK_LOCAL_IP (else every interface); the RPC side to spark.driver.bindAddress
            env={"SPARK_HOME": str(spark_home), "JAVA_HOME": str(jvm.java_home()), "SPARK_LOCAL_IP": s.host,
                 "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(s.log_dir)},
            ports={"SPARK_CONNECT_PORT": s.spark_connect_port, "SPARK_UI_PORT": s.spark_ui_port},
            healthy=self.healthy,
            start_timeout_s=120,
        )

    def prepare(self) -> None:
        (self.settings.data_dir / "spark" / "tmp").mkdir(parents=True, exist_ok=True)
        (self.settings.data_dir / "warehouse").mkdir(parents=True, exist_ok=True)
        # Spark's default INFO level logs every Connect plan: megabytes per minute, and CPU.
        self.log4j_config.write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=out\n"
            "appender.out.type=Console\nappender.out.name=out\nappender.out.target=SYSTEM_ERR\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n\n"
            "logger.connect.name=org.apache.spark.sql.connect.service.SparkConnectServer\nlogger.connect.level=INFO\n"
            "logger.procfs.name=org.apache.spark.executor.ProcfsMetricsGetter\nlogger.procfs.level=ERROR\n"
        )

    def healthy(self) -> bool:
        """Accepting sessions; on a standalone cluster also holding an executor (else every query would wait)."""
        s = self.settings
        if not port_open(s.host, s.spark_connect_port):
            return False
        return s.spark_cluster != "standalone" or bool(cluster_executors(s.spark_ui_url))

    def check_external(self) -> None:
        target = urlsplit(self.settings.spark_remote.replace("sc://", "http://", 1))
        if not port_open(target.hostname or "", target.port or 15002, timeout=3):
            raise ConfigError(f"Spark Connect at SPARK_REMOTE={self.settings.spark_remote} does not answer: "
                              "point it at a running server, or unset it to run the project's own.")


def cluster_executors(ui_url: str) -> list[dict]:
    """The application's active executors other than the driver, from its Spark UI's REST API (/api/v1):
    id, hostPort, totalCores, totalTasks, ... Empty when the UI does not answer."""
    try:
        apps = requests.get(f"{ui_url}/api/v1/applications", timeout=2).json()
        executors = requests.get(f"{ui_url}/api/v1/applications/{apps[0]['id']}/executors", timeout=2).json()
    except (requests.RequestException, ValueError, LookupError, TypeError):
        return []
    return [e for e in executors if e.get("id") != "driver" and e.get("isActive")]
