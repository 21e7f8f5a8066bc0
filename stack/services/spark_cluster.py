"""Spark standalone (SPARK_CLUSTER=standalone): one master and one worker from the pyspark wheel, which the
Spark Connect server (stack/services/spark_connect.py) runs its application on instead of local[*].

The wheel has no sbin/ start scripts, but `bin/spark-class org.apache.spark.deploy.master.Master` (and
`...worker.Worker`) runs each daemon in the foreground, which is what the supervisor wants. Both bind to
LAKEHOUSE_BIND_HOST only: `--host` for RPC, SPARK_LOCAL_IP for the web UIs (else every interface). The worker
starts the executors as its own children, in its process group, so stopping (or the watchdog killing) the
worker takes them along; their stdout/stderr are under `<data>/spark/work/<app>/<executor>/`.

Health is what Spark itself reports: the master's /json says ALIVE (not RECOVERING), and lists the worker as
ALIVE. The master keeps its state in a folder (recoveryMode FILESYSTEM), so a restart by the watchdog does not
cost the Connect server its executors; the worker re-registers by itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

import jvm
from settings import Settings
from stack.procs import LEAN_G1, ProcessSpec
from stack.services.base import Service

# Heap of each daemon (the master and the worker only keep the cluster's state; executors have their own).
DAEMON_MEMORY = "512m"


def master_state(settings: Settings) -> dict | None:
    """The master's own account of the cluster (/json: status, workers, active applications), or None."""
    try:
        response = requests.get(f"{settings.spark_master_ui_url}/json", timeout=2)
        return response.json() if response.ok else None
    except (requests.RequestException, ValueError):
        return None


def worker_alive(state: dict | None, host: str, ui_port: int) -> bool:
    """The master lists the worker whose web UI is host:ui_port as ALIVE (registered, heartbeating)."""
    return any(
        w.get("state") == "ALIVE" and w.get("webuiaddress", "").rstrip("/") == f"http://{host}:{ui_port}"
        for w in (state or {}).get("workers", [])
    )


def _daemon_env(settings: Settings, java_opts: str) -> dict[str, str]:
    return {
        "SPARK_HOME": str(jvm.spark_home()),
        "JAVA_HOME": str(jvm.java_home()),
        "SPARK_LOCAL_IP": settings.host,
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "SPARK_DAEMON_JAVA_OPTS": f"-Djava.net.preferIPv4Stack=true {' '.join(LEAN_G1)} {java_opts}".strip(),
        "SPARK_LOG_DIR": str(settings.log_dir),
    }


class SparkMaster(Service):
    name = "spark-master"

    def endpoint(self) -> str:
        return f"{self.settings.spark_cluster_url}, UI {self.settings.spark_master_ui_url}"

    def spec(self) -> ProcessSpec:
        s = self.settings
        return ProcessSpec(
            name=self.name,
            argv=[str(jvm.spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                  "--host", s.host, "--port", str(s.spark_master_port), "--webui-port", str(s.spark_master_ui_port)],
            # No REST submission server (port 6066, every interface): applications come from the Connect server.
            # Recovery from a folder: a master restarted by the watchdog takes the worker, the Connect server's
            # application and its executors back (a fresh master would have the worker kill them).
            env=_daemon_env(s, f"-Dspark.master.rest.enabled=false -Dspark.deploy.recoveryMode=FILESYSTEM "
                               f"-Dspark.deploy.recoveryDirectory={self.recovery_dir}"),
            ports={"SPARK_MASTER_PORT": s.spark_master_port, "SPARK_MASTER_WEBUI_PORT": s.spark_master_ui_port},
            healthy=self.healthy,
            # recovering waits up to spark.worker.timeout (60 s) for members that never answer (after a crash)
            start_timeout_s=120,
        )

    @property
    def recovery_dir(self) -> Path:
        """The master's record of its workers and applications."""
        return self.settings.data_dir / "spark" / "master-recovery"

    def prepare(self) -> None:
        self.recovery_dir.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        state = master_state(self.settings)
        return state is not None and state.get("status") == "ALIVE"


class SparkWorker(Service):
    name = "spark-worker"

    @property
    def work_dir(self) -> Path:
        """Executors' working folders and logs, one per application."""
        return self.settings.data_dir / "spark" / "work"

    @property
    def local_dir(self) -> Path:
        """Executors' shuffle and spill files."""
        return self.settings.data_dir / "spark" / "worker-tmp"

    def endpoint(self) -> str:
        s = self.settings
        return f"{s.spark_worker_cores} cores, {s.spark_worker_memory}, UI http://{s.host}:{s.spark_worker_ui_port}"

    def spec(self) -> ProcessSpec:
        s = self.settings
        # finished applications' folders are deleted after a day (the Connect server's own runs for days)
        cleanup = "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=86400"
        return ProcessSpec(
            name=self.name,
            argv=[str(jvm.spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                  "--host", s.host, "--webui-port", str(s.spark_worker_ui_port),
                  "--cores", str(s.spark_worker_cores), "--memory", s.spark_worker_memory,
                  "--work-dir", str(self.work_dir), s.spark_cluster_url],
            env={**_daemon_env(s, cleanup), "SPARK_LOCAL_DIRS": str(self.local_dir),
                 "PYSPARK_PYTHON": sys.executable},
            ports={"SPARK_WORKER_WEBUI_PORT": s.spark_worker_ui_port},
            healthy=self.healthy,
            start_timeout_s=60,
        )

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.local_dir.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        s = self.settings
        return worker_alive(master_state(s), s.host, s.spark_worker_ui_port)
