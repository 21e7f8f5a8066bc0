"""Shared pieces of the benchmarks: services on free ports in a temporary directory, memory readings,
and the results file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from settings import PROJECT_ROOT, Settings
from stack.procs import Supervisor, free_port, group_members
from stack.services import Kafka, MLflow, Postgres, Service, SparkConnect, SparkMaster, SparkWorker

RESULTS = PROJECT_ROOT / "bench" / "RESULTS.md"


class Services:
    """Start the requested services of the stack for one benchmark; stop and delete them after."""

    def __init__(self, driver_memory: str = "4g", kafka: bool = False, postgres: bool = False,
                 spark: bool = False, mlflow: bool = False, spark_cluster: str = "local", executor_memory: str = "2g"):
        root = Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
        root.chmod(0o755)  # the postgres OS user must traverse it when run as root
        self.cfg = Settings(
            data_dir=root,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            postgres_port=free_port(),
            mlflow_port=free_port(),
            spark_connect_port=free_port(),
            spark_ui_port=free_port(),
            dashboard_port=free_port(),
            spark_driver_memory=driver_memory,
            simulator_enabled=False,
            # SPARK_CLUSTER=standalone: a master and a worker (all the machine's cores) under the Connect server
            spark_cluster=spark_cluster,
            spark_master_port=free_port(),
            spark_master_ui_port=free_port(),
            spark_worker_ui_port=free_port(),
            spark_worker_cores=os.cpu_count() or 2,
            spark_worker_memory=executor_memory,
            spark_executor_memory=executor_memory,
        )
        self.supervisor = Supervisor(self.cfg.run_dir, self.cfg.log_dir, self.cfg.host)
        cluster = spark and spark_cluster == "standalone"
        wanted = [(postgres or mlflow, Postgres), (kafka, Kafka), (cluster, SparkMaster), (cluster, SparkWorker),
                  (spark, SparkConnect), (mlflow, MLflow)]
        self.services: list[Service] = [cls(self.cfg) for on, cls in wanted if on]
        self.started: list[Service] = []

    def __enter__(self) -> Self:
        # a SIGTERM (timeout, CI cancel) unwinds like Ctrl-C, so __exit__ still stops the services
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for service in self.services:
                service.install()
                service.prepare()
                self.started.append(service)
                self.supervisor.start(service.spec())
                service.bootstrap()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self.started:
            self.supervisor.stop(self.started.pop().spec())
        if exc and exc[0] is not None:  # a failed benchmark keeps its services' logs
            kept = Path(tempfile.mkdtemp(prefix="lakehouse-bench-logs-"))
            shutil.copytree(self.cfg.log_dir, kept, dirs_exist_ok=True)
            print(f"benchmark failed: the services' logs are kept in {kept}", flush=True)
        shutil.rmtree(self.cfg.data_dir, ignore_errors=True)

    def pid(self, name: str) -> int | None:
        return self.supervisor.pid(name)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def peak_rss_mb(pid: int | None) -> float:
    """Largest peak resident set (VmHWM) among the processes of `pid`'s group, in MB."""
    peaks = []
    for member in group_members(pid) if pid else []:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(peaks, default=0.0)


def machine() -> str:
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "?")
    return f"{cpus} cores, {int(mem) // 1024 // 1024} GiB"


def append_result(section: str, command: str, lines: list[str]) -> None:
    """Append one dated result block to bench/RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"\n### {section} — {stamp}", "", f"Command: `.venv/bin/python {command}` ({machine()})", "", "```", *lines, "```", ""]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach block: date, command, machine, figures as printed.\n")
    with RESULTS.open("a") as out:
        out.write("\n".join(block))
