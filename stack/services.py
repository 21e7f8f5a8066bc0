"""The services of the local stack: how each is installed, initialised, started and checked.

Each `Service` turns a `StackConfig` into a `ProcessSpec` (what to run) plus the one-time steps around
it: `install` (binaries), `prepare` (state that must exist before the first start: Kafka storage,
a PostgreSQL cluster, config files) and `bootstrap` (what must exist once it runs: topics, databases,
migrations). A service pointed elsewhere by the environment is not started, only checked and
bootstrapped (`managed` is False).
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

import psycopg
import requests

from stack import jvm
from stack.config import PROJECT_ROOT, ConfigError, StackConfig, redact
from stack.migrate import migrate
from stack.procs import ProcessSpec, port_open

VENV_BIN = Path(sys.executable).parent


class Service(ABC):
    name: str = ""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg

    @property
    def managed(self) -> bool:
        return True

    def install(self) -> None:
        """Install what the service needs to run (idempotent)."""

    def prepare(self) -> None:
        """Create state that must exist before the first start (idempotent)."""

    @abstractmethod
    def spec(self) -> ProcessSpec:
        """The process to run."""

    def healthy(self) -> bool:
        return True

    def bootstrap(self) -> None:
        """Create what must exist once the service runs (idempotent)."""

    def check_external(self) -> None:
        """Fail fast when an external (unmanaged) endpoint is unreachable."""

    def endpoint(self) -> str:
        return ""


# ---------------------------------------------------------------------------------------- Kafka
class Kafka(Service):
    """A single KRaft broker+controller from the kafka_2.13 jars."""

    name = "kafka"

    @property
    def managed(self) -> bool:
        return self.cfg.external_kafka is None

    @property
    def home(self) -> Path:
        return self.cfg.data_dir / "kafka"

    def endpoint(self) -> str:
        return self.cfg.kafka_bootstrap

    def _server_properties(self) -> str:
        c = self.cfg
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={c.host}:{c.kafka_controller_port}",
                f"listeners=PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{c.host}:{c.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={c.user_events_partitions}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    def prepare(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._server_properties())
        (self.home / "log4j2.properties").write_text(
            "rootLogger.level=INFO\nrootLogger.appenderRef.out.ref=out\n"
            "appender.out.type=Console\nappender.out.name=out\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
            "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
        )
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool") + ["format", "--standalone", "-t", cluster_id, "-c", str(props)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ConfigError(f"Formatting Kafka storage in {self.home / 'data'} failed:\n{result.stdout}{result.stderr}")

    def _java(self, main_class: str, heap: str = "256m") -> list[str]:
        classpath = os.pathsep.join(str(j) for j in jvm.jars(self.cfg.jvm_lib_dir, "kafka"))
        return [
            jvm.java_bin(),
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            classpath,
            main_class,
        ]

    def spec(self) -> ProcessSpec:
        argv = self._java("kafka.Kafka", self.cfg.kafka_heap)
        argv[2:2] = [f"-Xms{self.cfg.kafka_heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
        return ProcessSpec(
            name=self.name,
            argv=argv + [str(self.home / "server.properties")],
            ports={"KAFKA_PORT": self.cfg.kafka_port, "KAFKA_CONTROLLER_PORT": self.cfg.kafka_controller_port},
            healthy=self.healthy,
            start_timeout_s=90,
        )

    def healthy(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        host, _, port = self.cfg.kafka_bootstrap.split(",")[0].rpartition(":")
        if not port_open(host, int(port)):
            return False
        try:
            AdminClient({"bootstrap.servers": self.cfg.kafka_bootstrap, "log_level": 0}).list_topics(timeout=3)
            return True
        except KafkaException:
            return False

    def check_external(self) -> None:
        if not self.healthy():
            raise ConfigError(
                f"Kafka at KAFKA_BOOTSTRAP_SERVERS={self.cfg.kafka_bootstrap} does not answer. "
                "Point it at a reachable broker, or unset it to run the project's own broker."
            )

    def bootstrap(self) -> None:
        from confluent_kafka.admin import AdminClient

        from contract.topics import topic_specs
        from resources.kafka import ensure_topics

        ensure_topics(
            AdminClient({"bootstrap.servers": self.cfg.kafka_bootstrap}), topic_specs(self.cfg.user_events_partitions)
        )


# ----------------------------------------------------------------------------------- PostgreSQL
def postgres_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class Postgres(Service):
    """A project-owned PostgreSQL cluster under the data dir (trust auth, loopback only), unless
    POSTGRES_URL names a server."""

    name = "postgres"
    superuser = "lakehouse"

    @property
    def managed(self) -> bool:
        return self.cfg.external_postgres_url is None

    @property
    def pgdata(self) -> Path:
        return self.cfg.data_dir / "postgres"

    @property
    def os_user(self) -> str | None:
        """PostgreSQL refuses to run as root; as root we run it as the `postgres` OS user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ConfigError("Running as root, PostgreSQL needs the OS user 'postgres' (created by the "
                              "Debian postgresql package): apt-get install postgresql") from None
        return "postgres"

    def endpoint(self) -> str:
        return redact(self.cfg.postgres_url)

    def install(self) -> None:
        if postgres_bin_dir() is not None:
            return
        if os.geteuid() != 0:
            raise ConfigError(
                "PostgreSQL server binaries were not found under /usr/lib/postgresql. Install them "
                "(sudo apt-get install postgresql) or set POSTGRES_URL to an existing server."
            )
        print("installing PostgreSQL from Debian packages (apt-get) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]):
            result = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if result.returncode != 0:
                raise ConfigError(f"`{' '.join(cmd)}` failed; install postgresql or set POSTGRES_URL:\n{result.stderr[-2000:]}")

    def prepare(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        bindir = postgres_bin_dir()
        if bindir is None:
            raise ConfigError("PostgreSQL is not installed: run `lakehouse setup` or set POSTGRES_URL.")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        _make_traversable(self.pgdata.parent)
        if self.os_user:
            shutil.chown(self.pgdata, self.os_user, self.os_user)
        self.pgdata.chmod(0o700)
        result = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", self.superuser, "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-instructions"],
            capture_output=True, text=True, user=self.os_user, group=self.os_user, cwd="/",
        )
        if result.returncode != 0:
            raise ConfigError(f"initdb failed for {self.pgdata}:\n{result.stdout}{result.stderr}")

    def spec(self) -> ProcessSpec:
        bindir = postgres_bin_dir()
        return ProcessSpec(
            name=self.name,
            argv=[
                str(bindir / "postgres"), "-D", str(self.pgdata),
                "-c", f"listen_addresses={self.cfg.host}", "-p", str(self.cfg.postgres_port),
                "-c", "unix_socket_directories=", "-c", "max_connections=200",
                "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning",
            ],
            cwd=Path("/"),
            ports={"POSTGRES_PORT": self.cfg.postgres_port},
            healthy=self.healthy,
            start_timeout_s=60,
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client to leave
            user=self.os_user,
        )

    def _admin_url(self) -> str:
        from stack.config import with_database

        return with_database(self.cfg.postgres_url, "postgres")

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self._admin_url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def check_external(self) -> None:
        try:
            psycopg.connect(self.cfg.postgres_url, connect_timeout=5).close()
        except psycopg.Error as exc:
            raise ConfigError(
                f"PostgreSQL at POSTGRES_URL={redact(self.cfg.postgres_url)} is unreachable: "
                f"{str(exc).strip().splitlines()[0]}. Set POSTGRES_URL to a reachable server, or unset it to "
                "run the project's own cluster."
            ) from None

    def bootstrap(self) -> None:
        wanted = [self.cfg.analytics_db, self.cfg.dagster_db, self.cfg.mlflow_db]
        admin = self._admin_url() if self.managed else self.cfg.postgres_url
        with psycopg.connect(admin, autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in wanted:
                if db not in existing:
                    try:
                        conn.execute(f'CREATE DATABASE "{db}"')
                    except psycopg.errors.InsufficientPrivilege:
                        raise ConfigError(f"Database {db} does not exist and the POSTGRES_URL user may not "
                                          f"create it: create it, or set DAGSTER_POSTGRES_DB / MLFLOW_POSTGRES_DB.") from None
        migrate(self.cfg.postgres_url)


def _make_traversable(path: Path) -> None:
    """Let the postgres OS user reach its data dir through directories root created."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


# ------------------------------------------------------------------------------ Spark Connect
class SparkConnect(Service):
    """A long-running Spark Connect server in local mode, with the Kafka source and Delta."""

    name = "spark-connect"

    @property
    def managed(self) -> bool:
        return self.cfg.external_spark_remote is None

    def endpoint(self) -> str:
        return self.cfg.spark_remote

    def spec(self) -> ProcessSpec:
        from resources.spark import DELTA_SESSION_CONF

        spark_home = jvm.pyspark_jars_dir().parent
        extra = os.pathsep.join(str(j) for j in jvm.spark_extra_jars(self.cfg.jvm_lib_dir))
        conf = {
            **DELTA_SESSION_CONF,
            "spark.driver.extraClassPath": extra,
            "spark.connect.grpc.binding.address": self.cfg.host,
            "spark.connect.grpc.binding.port": str(self.cfg.spark_connect_port),
            "spark.driver.host": self.cfg.host,
            "spark.driver.bindAddress": self.cfg.host,
            "spark.ui.port": "4040",
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(self.cfg.warehouse_dir / "spark-warehouse"),
            "spark.local.dir": str(self.cfg.data_dir / "spark" / "tmp"),
            "spark.driver.extraJavaOptions": "-Djava.net.preferIPv4Stack=true -XX:+UseG1GC "
            f"-Dlog4j2.configurationFile={self.log4j_config}",
        }
        argv = [
            str(spark_home / "bin" / "spark-submit"),
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "lakehouse-spark-connect",
            "--master", f"local[{self.cfg.spark_local_cores}]",
            "--driver-memory", self.cfg.spark_driver_memory,
        ]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        argv.append("spark-internal")
        return ProcessSpec(
            name=self.name,
            argv=argv,
            env={"SPARK_HOME": str(spark_home), "JAVA_HOME": str(jvm.java_home()),
                 "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(self.cfg.log_dir)},
            ports={"SPARK_CONNECT_PORT": self.cfg.spark_connect_port},
            healthy=self.healthy,
            start_timeout_s=120,
        )

    @property
    def log4j_config(self) -> Path:
        return self.cfg.data_dir / "spark" / "log4j2.properties"

    def prepare(self) -> None:
        (self.cfg.data_dir / "spark" / "tmp").mkdir(parents=True, exist_ok=True)
        self.cfg.warehouse_dir.mkdir(parents=True, exist_ok=True)
        # Spark's default INFO level logs every Connect plan: megabytes per minute, and CPU.
        self.log4j_config.write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=out\n"
            "appender.out.type=Console\nappender.out.name=out\nappender.out.target=SYSTEM_ERR\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n\n"
            "logger.connect.name=org.apache.spark.sql.connect.service.SparkConnectServer\nlogger.connect.level=INFO\n"
            "logger.procfs.name=org.apache.spark.executor.ProcfsMetricsGetter\nlogger.procfs.level=ERROR\n"
        )

    def healthy(self) -> bool:
        return port_open(self.cfg.host, self.cfg.spark_connect_port)

    def check_external(self) -> None:
        from urllib.parse import urlsplit

        target = urlsplit(self.cfg.spark_remote.replace("sc://", "http://", 1))
        if not port_open(target.hostname or "", target.port or 15002, timeout=3):
            raise ConfigError(f"Spark Connect at SPARK_REMOTE={self.cfg.spark_remote} does not answer: "
                              "point it at a running server, or unset it to run the project's own.")


# ------------------------------------------------------------------------------------- MLflow
class MLflow(Service):
    """`mlflow server` with its backend store in PostgreSQL and artifacts under the data dir."""

    name = "mlflow"

    @property
    def managed(self) -> bool:
        return self.cfg.external_mlflow is None

    def endpoint(self) -> str:
        return self.cfg.mlflow_tracking_uri

    def prepare(self) -> None:
        (self.cfg.data_dir / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[str(VENV_BIN / "mlflow"), "server", "--host", self.cfg.host, "--port", str(self.cfg.mlflow_port),
                  "--workers", "1", "--serve-artifacts",
                  "--artifacts-destination", str(self.cfg.data_dir / "mlflow" / "artifacts")],
            # The store URI travels in the environment, not argv, so `ps` never shows a password.
            env={
                "MLFLOW_BACKEND_STORE_URI": self.cfg.mlflow_postgres_url.replace("postgresql://", "postgresql+psycopg://", 1),
                # The GenAI job runner (a Huey consumer per job type, ~250 MB each) is not used here.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            ports={"MLFLOW_PORT": self.cfg.mlflow_port},
            healthy=self.healthy,
            start_timeout_s=120,
        )

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.cfg.mlflow_tracking_uri}/health", timeout=2).ok
        except requests.RequestException:
            return False

    def check_external(self) -> None:
        if not self.healthy():
            raise ConfigError(f"MLflow at MLFLOW_TRACKING_URI={self.cfg.mlflow_tracking_uri} does not answer "
                              "/health: point it at a running server, or unset it to run the project's own.")


# ------------------------------------------------------------------------------------ Dagster
def write_dagster_yaml(dagster_home: Path) -> Path:
    """Instance config: run, event-log and schedule storage in PostgreSQL (URL from DAGSTER_PG_URL)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(
        "# generated by `lakehouse up`; the URL comes from the environment, never from this file\n"
        "storage:\n"
        "  postgres:\n"
        "    postgres_url:\n"
        "      env: DAGSTER_PG_URL\n"
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    max_concurrent_runs: 2\n"
        "    dequeue_interval_seconds: 1\n"
        "run_launcher:\n"
        "  module: dagster.core.launcher\n"
        "  class: DefaultRunLauncher\n"
        "telemetry:\n"
        "  enabled: false\n"
    )
    return path


class DagsterWebserver(Service):
    name = "dagster-webserver"

    def endpoint(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.dagster_port}"

    def prepare(self) -> None:
        write_dagster_yaml(self.cfg.dagster_home)

    def spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[str(VENV_BIN / "dagster-webserver"), "-h", self.cfg.host, "-p", str(self.cfg.dagster_port),
                  "-w", str(PROJECT_ROOT / "workspace.yaml")],
            env=self.cfg.service_env(),
            cwd=PROJECT_ROOT,
            ports={"DAGSTER_PORT": self.cfg.dagster_port},
            healthy=self.healthy,
            start_timeout_s=180,
        )

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.endpoint()}/server_info", timeout=2).ok
        except requests.RequestException:
            return False


class DagsterDaemon(Service):
    """Runs sensors, schedules and the run queue."""

    name = "dagster-daemon"

    def prepare(self) -> None:
        write_dagster_yaml(self.cfg.dagster_home)

    def spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[str(VENV_BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            env=self.cfg.service_env(),
            cwd=PROJECT_ROOT,
            healthy=self.healthy,
            start_timeout_s=180,
        )

    def healthy(self) -> bool:
        """All daemons have sent a heartbeat (what `dagster-daemon liveness-check` reads)."""
        try:
            with psycopg.connect(self.cfg.dagster_postgres_url, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM daemon_heartbeats WHERE timestamp > now() AT TIME ZONE 'UTC' - interval '2 minutes'"
                ).fetchone()
            return bool(row and row[0] >= 3)
        except psycopg.Error:
            return False


# ---------------------------------------------------------------------------------- Simulator
class Simulator(Service):
    """Simulated user traffic at a modest real-time rate, so data flows after `up` (SIMULATOR_ENABLED=0
    switches it off). Its ground truth is written under <data>/simulator/<run id>/ when it stops."""

    name = "simulator"

    def endpoint(self) -> str:
        return f"{self.cfg.simulator_rate} events/s -> {self.cfg.kafka_bootstrap}"

    def spec(self) -> ProcessSpec:
        rate = self.cfg.simulator_rate
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "simulator", "--clock", "realtime", "--rate", str(rate),
                  "--users", str(max(1000, 25 * rate)), "--bootstrap-servers", self.cfg.kafka_bootstrap],
            env={"LAKEHOUSE_DATA_DIR": str(self.cfg.data_dir)},
            cwd=PROJECT_ROOT,
            healthy=self.healthy,
            start_timeout_s=60,
        )

    def healthy(self) -> bool:
        """It has connected and is producing (the line it logs once the topic is found)."""
        log = self.cfg.log_dir / f"{self.name}.log"
        try:
            return "producing to" in log.read_text(errors="replace").rsplit("==== ", 1)[-1]
        except OSError:
            return False


def all_services(cfg: StackConfig) -> list[Service]:
    """Every service, in start order (stop order is the reverse)."""
    from stack.flink import AlertLoader, FlinkCEP  # stack.flink builds on this module

    cep = [FlinkCEP(cfg), AlertLoader(cfg)] if cfg.flink_cep_enabled else []
    return [
        Postgres(cfg),
        Kafka(cfg),
        *cep,
        SparkConnect(cfg),
        MLflow(cfg),
        DagsterWebserver(cfg),
        DagsterDaemon(cfg),
        *([Simulator(cfg)] if cfg.simulator_enabled else []),
    ]

