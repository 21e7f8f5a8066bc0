"""Every setting of the lakehouse, read from the environment once, with its local default.

This is the ground floor: every other package may import it, it imports nothing of the project, and it
is the only code that reads the environment (the Flink job, in its own virtualenv, mirrors the few
names it needs with the standard library: flink_cep/settings.py, kept equal by a unit test).

A service is *managed* (started and stopped by `lakehouse up/down`) unless the environment points at an
existing one: `KAFKA_BOOTSTRAP_SERVERS`, `POSTGRES_URL`, `MLFLOW_TRACKING_URI` and `SPARK_REMOTE` each
switch the stack from "start our own" to "use that one". Tests build a `Settings` of their own on free
ports and temporary directories (`Settings(data_dir=..., kafka_port=...)`), so the same start-up code
serves `up` and the test suite.

Relative paths (`LAKEHOUSE_DATA_DIR=./.lakehouse`) are resolved against the working directory once,
here; every process the stack starts is handed absolute paths.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

# The folder that holds the packages: the repository in a source checkout, site-packages when installed.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()
MINUTE_FORMAT = "%Y-%m-%d-%H:%M"
DASHBOARD_DB_ROLE = "lakehouse_dashboard"  # the read-only login of the managed cluster

Port = Annotated[int, Field(gt=0, lt=65536)]
JVM_MEMORY = r"[1-9][0-9]*[kKmMgGtT]"  # a JVM memory size as Spark takes it: 512m, 2g


class ConfigError(RuntimeError):
    """A setting is missing or wrong. The message says what to set."""


def _env(name: str, default, **kw):
    """A field read from the environment variable `name` (tests may also pass the field's own name)."""
    return Field(default, validation_alias=AliasChoices(name), **kw)


_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("lakehouse_environ", default=None)


class _Environ(EnvSettingsSource):
    """The process environment, or the mapping `Settings.from_env(environ)` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        source = os.environ if environ is None else environ
        values = {k.lower(): v for k, v in source.items()}
        return {k: v for k, v in values.items() if v != ""} if self.env_ignore_empty else values


class Settings(BaseSettings):
    """Where every service lives and listens, and what `lakehouse up` starts."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, env_ignore_empty=True, extra="ignore")

    data_dir: Path = _env("LAKEHOUSE_DATA_DIR", Path("./.lakehouse"))
    host: str = _env("LAKEHOUSE_BIND_HOST", "127.0.0.1")
    # Kafka
    external_kafka: str | None = _env("KAFKA_BOOTSTRAP_SERVERS", None)
    kafka_port: Port = _env("KAFKA_PORT", 9092)
    kafka_controller_port: Port = _env("KAFKA_CONTROLLER_PORT", 9093)
    kafka_heap: str = _env("KAFKA_HEAP", "512m")
    user_events_partitions: int = _env("KAFKA_USER_EVENTS_PARTITIONS", 2, ge=1)
    # managed KRaft nodes (each broker+controller, one quorum); node n listens on KAFKA_PORT + 2(n-1) and
    # KAFKA_CONTROLLER_PORT + 2(n-1)
    kafka_brokers: int = _env("KAFKA_BROKERS", 1, ge=1, le=9)
    # replicas of each topic the stack creates; unset: as many as there are managed brokers, at most 3
    kafka_replication_factor: int | None = _env("KAFKA_REPLICATION_FACTOR", None, ge=1)
    # every Kafka connection: plaintext, or sasl_ssl (TLS checked against a CA, SCRAM-SHA-512 logins); the managed
    # brokers then get a project CA, a broker certificate and generated passwords under <data dir>/secrets.
    # Passwords are named by file, never by value, so none travels in an environment or a config shown in a UI.
    kafka_security: Literal["plaintext", "sasl_ssl"] = _env("KAFKA_SECURITY", "plaintext")
    kafka_sasl_username: str = _env("KAFKA_SASL_USERNAME", "lakehouse")
    kafka_sasl_password_file: Path | None = _env("KAFKA_SASL_PASSWORD_FILE", None)
    kafka_ssl_ca_file: Path | None = _env("KAFKA_SSL_CA_FILE", None)
    # PostgreSQL (analytics, Dagster and MLflow databases on one server)
    external_postgres_url: str | None = _env("POSTGRES_URL", None)
    postgres_port: Port = _env("POSTGRES_PORT", 5433)
    # the managed cluster accepts TLS connections only (a project CA under <data dir>/secrets/postgres-tls); every
    # client's URL then asks for sslmode=verify-full against that CA
    postgres_tls: bool = _env("POSTGRES_TLS", False)
    analytics_db: str = "analytics_db"
    dagster_db: str = _env("DAGSTER_POSTGRES_DB", "dagster")
    mlflow_db: str = _env("MLFLOW_POSTGRES_DB", "mlflow")
    # MLflow, Dagster
    external_mlflow: str | None = _env("MLFLOW_TRACKING_URI", None)
    mlflow_port: Port = _env("MLFLOW_PORT", 5000)
    dagster_port: Port = _env("DAGSTER_PORT", 3000)
    dagster_code_port: Port = _env("DAGSTER_CODE_PORT", 4266)
    # Spark
    external_spark_remote: str | None = _env("SPARK_REMOTE", None)
    spark_master: str | None = _env("SPARK_MASTER", None)
    spark_connect_port: Port = _env("SPARK_CONNECT_PORT", 15002)
    spark_ui_port: Port = _env("SPARK_UI_PORT", 4040)
    spark_driver_memory: str = _env("SPARK_DRIVER_MEMORY", "2g")
    spark_local_cores: str = _env("SPARK_LOCAL_CORES", "*")
    # Spark standalone (SPARK_CLUSTER=standalone): `up` starts a master and one worker and runs the Connect
    # server's application on them instead of local[*]. The names are Spark's own for the same things.
    spark_cluster: Literal["local", "standalone"] = _env("SPARK_CLUSTER", "local")
    spark_master_port: Port = _env("SPARK_MASTER_PORT", 7077)
    spark_master_ui_port: Port = _env("SPARK_MASTER_WEBUI_PORT", 8080)
    spark_worker_ui_port: Port = _env("SPARK_WORKER_WEBUI_PORT", 8084)  # Spark's default 8081 is Flink's
    spark_worker_cores: int = _env("SPARK_WORKER_CORES", 2, ge=1)
    spark_worker_memory: str = _env("SPARK_WORKER_MEMORY", "2g")
    spark_executor_memory: str = _env("SPARK_EXECUTOR_MEMORY", "2g")
    # Flink (the job's own knobs are read by flink_cep/settings.py)
    flink_rest_port: Port = _env("FLINK_REST_PORT", 8081)
    flink_cep_enabled: bool = _env("FLINK_CEP_ENABLED", True)
    # dashboard, simulator
    dashboard_port: Port = _env("DASHBOARD_PORT", 8082)
    # the token POST /api/generate-test-data asks for (unset: the endpoint refuses); a secret, never shown
    dashboard_token: SecretStr | None = _env("DASHBOARD_TOKEN", None)
    # the dashboard's read-only database login when POSTGRES_URL names an external server
    dashboard_postgres_url: SecretStr | None = _env("DASHBOARD_POSTGRES_URL", None)
    simulator_enabled: bool = _env("SIMULATOR_ENABLED", True)
    # the simulated user service: events/s and people (about 108 events per user a day at the defaults), attack
    # scenarios per minute, and the days of history produced on a data dir's first start (simulator/history.py;
    # 7 days at 5 events/s are 3.3M events, which this 2-core machine lands and refines within minutes)
    simulator_rate: float = _env("SIMULATOR_RATE", 5.0, gt=0)
    simulator_users: int = _env("SIMULATOR_USERS", 4000, ge=1)
    simulator_scenario_rate: float = _env("SIMULATOR_SCENARIO_RATE", 2.0, ge=0)
    simulator_history_days: int = _env("SIMULATOR_HISTORY_DAYS", 7, ge=0, le=60)
    # the lakehouse itself
    partitions_start: str | None = _env("LAKEHOUSE_PARTITIONS_START", None)
    # event dates before the first window that silver (by event date) still accepts: the history the simulator
    # produces on a first start (SIMULATOR_HISTORY_DAYS, 7) and a replay of up to Kafka's default retention
    # (7 days) by a user service after an outage
    event_lookback_days: int = _env("LAKEHOUSE_EVENT_LOOKBACK_DAYS", 14, ge=0)
    # today's silver, features and SQL models are refreshed at most this often (seconds)
    silver_refresh_interval_s: int = _env("SILVER_REFRESH_INTERVAL_S", 300, ge=10)
    warehouse_root: str | None = _env("LAKEHOUSE_WAREHOUSE", None)
    # installed tools
    java_home_dir: Path | None = _env("JAVA_HOME", None)
    jvm_lib_dir: Path = _env("LAKEHOUSE_JVM_LIB_DIR", PROJECT_ROOT / "jvm" / "lib")
    flink_venv: Path | None = _env("LAKEHOUSE_FLINK_VENV", None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environ(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment). A wrong value raises ConfigError
        naming the variable."""
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            problems = "; ".join(
                f"{e['loc'][0]}={e.get('input')!r}: {e['msg']}" if e["loc"] else e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            )
            raise ConfigError(f"invalid setting: {problems}") from None
        finally:
            _ENVIRON.reset(token)

    @field_validator("kafka_security", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("data_dir", "jvm_lib_dir", "flink_venv", "kafka_sasl_password_file", "kafka_ssl_ca_file",
                     mode="after")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser().resolve()

    @model_validator(mode="after")
    def _one_spark(self) -> Settings:
        if self.spark_master and self.external_spark_remote:
            raise ValueError(
                "SPARK_MASTER asks for a classic Spark session and SPARK_REMOTE for a Spark Connect server: "
                "unset one of them"
            )
        return self

    def _port_settings(self) -> dict[str, int]:
        """Every port setting by its environment variable: KAFKA_PORT -> 9092, ..."""
        return {_env_name(name): getattr(self, name) for name in type(self).model_fields if name.endswith("_port")}

    @model_validator(mode="after")
    def _kafka_cluster_fits(self) -> Settings:
        if self.external_kafka is None and (self.kafka_replication_factor or 1) > self.kafka_brokers:
            raise ValueError(
                f"KAFKA_REPLICATION_FACTOR={self.kafka_replication_factor} needs as many brokers, but the stack runs "
                f"KAFKA_BROKERS={self.kafka_brokers}: raise KAFKA_BROKERS or lower KAFKA_REPLICATION_FACTOR"
            )
        taken = {port: name for name, port in self._port_settings().items() if not name.startswith("KAFKA_")}
        for node, broker, controller in self.kafka_nodes:
            for port in (broker, controller):
                if port in taken:
                    raise ValueError(
                        f"Kafka node {node} listens on {port} (KAFKA_PORT / KAFKA_CONTROLLER_PORT + {2 * (node - 1)}), "
                        f"which is {taken[port]}: move KAFKA_PORT / KAFKA_CONTROLLER_PORT or {taken[port]}"
                    )
        ports = [p for _, broker, controller in self.kafka_nodes for p in (broker, controller)]
        if len(set(ports)) != len(ports):
            raise ValueError(f"KAFKA_PORT={self.kafka_port} and KAFKA_CONTROLLER_PORT={self.kafka_controller_port} "
                             f"overlap for {self.kafka_brokers} brokers (node n takes each + 2(n-1)): set them apart")
        return self

    @model_validator(mode="after")
    def _spark_cluster_fits(self) -> Settings:
        if self.spark_cluster != "standalone":
            return self
        if self.external_spark_remote:
            raise ValueError(
                f"SPARK_CLUSTER=standalone runs the project's own Spark Connect server on its own cluster, but "
                f"SPARK_REMOTE={self.external_spark_remote} names another server: unset SPARK_REMOTE, or set SPARK_CLUSTER=local"
            )
        if self.spark_master and self.spark_master != self.spark_cluster_url:
            raise ValueError(
                f"SPARK_CLUSTER=standalone starts a master at {self.spark_cluster_url}, but SPARK_MASTER={self.spark_master} "
                f"points elsewhere: unset SPARK_MASTER (runs attach through Spark Connect), set it to {self.spark_cluster_url}, "
                "or set SPARK_CLUSTER=local"
            )
        ports = self._port_settings()
        for mine in ("SPARK_MASTER_PORT", "SPARK_MASTER_WEBUI_PORT", "SPARK_WORKER_WEBUI_PORT"):
            clash = [other for other, port in ports.items() if port == ports[mine] and other != mine]
            if clash:
                raise ValueError(f"{mine}={ports[mine]} is also {clash[0]}'s port: give {mine} a port of its own")
        if _mebibytes(self.spark_executor_memory) > _mebibytes(self.spark_worker_memory):
            raise ValueError(
                f"SPARK_EXECUTOR_MEMORY={self.spark_executor_memory} is more than the worker offers "
                f"(SPARK_WORKER_MEMORY={self.spark_worker_memory}), so no executor could start: raise SPARK_WORKER_MEMORY "
                "or lower SPARK_EXECUTOR_MEMORY"
            )
        return self

    @field_validator("spark_worker_memory", "spark_executor_memory")
    @classmethod
    def _jvm_memory(cls, value: str) -> str:
        if not re.fullmatch(JVM_MEMORY, value):
            raise ValueError("must be a JVM memory size: a whole number with k, m, g or t, e.g. 512m or 2g")
        return value

    @field_validator("partitions_start")
    @classmethod
    def _minute(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.strptime(value, MINUTE_FORMAT)
            except ValueError:
                raise ValueError("must be a UTC minute as YYYY-MM-DD-HH:MM, e.g. 2026-11-01-00:00") from None
        return value

    def but(self, **changes) -> Settings:
        return self.model_copy(update=changes)

    # ---- derived endpoints -------------------------------------------------------------------
    @property
    def kafka_nodes(self) -> list[tuple[int, int, int]]:
        """(node id, broker port, controller port) of each managed Kafka node."""
        return [(n, self.kafka_port + 2 * (n - 1), self.kafka_controller_port + 2 * (n - 1))
                for n in range(1, self.kafka_brokers + 1)]

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or ",".join(f"{self.host}:{port}" for _, port, _ in self.kafka_nodes)

    @property
    def kafka_tls_dir(self) -> Path:
        """The managed brokers' TLS material (KAFKA_SECURITY=sasl_ssl): ca.pem, ca.key, broker.pem (keys 0600)."""
        return self.data_dir / "secrets" / "kafka-tls"

    @property
    def kafka_broker_password_file(self) -> Path:
        """The password of the managed brokers' own SCRAM user (inter-broker traffic), mode 0600."""
        return self.data_dir / "secrets" / "kafka-broker-password"

    @property
    def kafka_transport(self) -> KafkaTransport:
        """How every Kafka client of the platform connects (KAFKA_SECURITY and its files)."""
        if self.kafka_security == "plaintext":
            return KafkaTransport()
        managed_ca = None if self.external_kafka else self.kafka_tls_dir / "ca.pem"
        return KafkaTransport(
            protocol=self.kafka_security,
            username=self.kafka_sasl_username,
            password_file=self.kafka_sasl_password_file or self.data_dir / "secrets" / "kafka-client-password",
            ca_file=self.kafka_ssl_ca_file or managed_ca,
        )

    def kafka_client_config(self) -> dict[str, str]:
        """bootstrap.servers and the transport settings of a confluent-kafka (librdkafka) client; holds the
        password when KAFKA_SECURITY=sasl_ssl: pass it to a client, never print it."""
        return {"bootstrap.servers": self.kafka_bootstrap, **self.kafka_transport.librdkafka()}

    def ensure_kafka_passwords(self) -> tuple[str, str]:
        """The managed brokers' SCRAM passwords (client user, broker user), generated once into 0600 files."""
        return _ensure_secret(self.kafka_transport.password_file), _ensure_secret(self.kafka_broker_password_file)

    @property
    def topic_replication_factor(self) -> int:
        """KAFKA_REPLICATION_FACTOR, else every managed broker (at most 3) holds a replica."""
        return self.kafka_replication_factor or (1 if self.external_kafka else min(self.kafka_brokers, 3))

    @property
    def topic_min_insync_replicas(self) -> int:
        """Replicas a write with acks=all waits for: 2 of 3, so one broker may fail without losing a write."""
        return 2 if self.topic_replication_factor >= 3 else 1

    @property
    def postgres_password_file(self) -> Path:
        """The managed cluster's generated superuser password (mode 0600)."""
        return self.data_dir / "secrets" / "postgres-password"

    @property
    def postgres_url(self) -> str:
        """The analytics database: POSTGRES_URL, or the managed cluster with its generated password."""
        if self.external_postgres_url:
            return self.external_postgres_url
        try:
            password = ":" + self.postgres_password_file.read_text().strip()
        except OSError:
            password = ""  # a cluster made before passwords existed (trust on loopback), or not made yet
        return f"postgresql://lakehouse{password}@{self.host}:{self.postgres_port}/{self.analytics_db}{self._postgres_tls_query}"

    @property
    def postgres_tls_dir(self) -> Path:
        """The managed cluster's TLS material (POSTGRES_TLS): ca.pem, ca.key, server.pem (keys 0600)."""
        return self.data_dir / "secrets" / "postgres-tls"

    @property
    def _postgres_tls_query(self) -> str:
        """What a client of the managed cluster adds to its URL: TLS, the server checked against the project CA."""
        return f"?sslmode=verify-full&sslrootcert={self.postgres_tls_dir / 'ca.pem'}" if self.postgres_tls else ""

    @property
    def dagster_postgres_url(self) -> str:
        return with_database(self.postgres_url, self.dagster_db)

    @property
    def mlflow_postgres_url(self) -> str:
        return with_database(self.postgres_url, self.mlflow_db)

    @property
    def dashboard_db_password_file(self) -> Path:
        """The password of the managed cluster's read-only role `lakehouse_dashboard` (mode 0600)."""
        return self.data_dir / "secrets" / "dashboard-db-password"

    @property
    def dashboard_db_url(self) -> str:
        """What the dashboard reads the analytics database with: DASHBOARD_POSTGRES_URL, else the managed
        cluster's read-only role, else (POSTGRES_URL names a server we do not manage) POSTGRES_URL itself
        (`dashboard_db_read_only` tells which)."""
        if self.dashboard_postgres_url is not None:
            return self.dashboard_postgres_url.get_secret_value()
        if self.external_postgres_url:
            return self.external_postgres_url
        try:
            password = ":" + self.dashboard_db_password_file.read_text().strip()
        except OSError:
            password = ""
        return (f"postgresql://{DASHBOARD_DB_ROLE}{password}@{self.host}:{self.postgres_port}/{self.analytics_db}"
                f"{self._postgres_tls_query}")

    @property
    def dashboard_db_read_only(self) -> bool:
        """False when the dashboard falls back to POSTGRES_URL's own (writing) login."""
        return self.dashboard_postgres_url is not None or not self.external_postgres_url

    @property
    def spark_ui_url(self) -> str:
        """The Spark UI (and its REST API under /api/v1) of the Spark Connect server."""
        host = urlsplit(self.spark_remote.replace("sc://", "http://", 1)).hostname or self.host
        return f"http://{host}:{self.spark_ui_port}"

    @property
    def spark_cluster_url(self) -> str:
        """The managed standalone master (SPARK_CLUSTER=standalone) that the Connect server runs on."""
        return f"spark://{self.host}:{self.spark_master_port}"

    @property
    def spark_master_ui_url(self) -> str:
        """The standalone master's web UI; its /json lists workers and applications."""
        return f"http://{self.host}:{self.spark_master_ui_port}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.external_mlflow or f"http://{self.host}:{self.mlflow_port}"

    @property
    def spark_remote(self) -> str:
        return self.external_spark_remote or f"sc://{self.host}:{self.spark_connect_port}"

    # ---- where things live -------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Pid files and generated configs."""
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def warehouse(self) -> str:
        """Root of the Delta tables (bronze, silver, ...): a folder under the data dir, or any URI."""
        return self.warehouse_root or str(self.data_dir / "warehouse")

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    @property
    def flink_venv_dir(self) -> Path:
        """The PyFlink virtualenv: beside the checkout's .venv, or under the data dir when installed."""
        if self.flink_venv is not None:
            return self.flink_venv
        return PROJECT_ROOT / ".venv-flink" if SOURCE_CHECKOUT else self.data_dir / "flink" / "venv"

    @property
    def deployment_file(self) -> Path:
        return self.data_dir / "deployment.json"

    def service_env(self) -> dict[str, str]:
        """The environment every process of the stack (and every Dagster run) sees: absolute paths and
        resolved endpoints, so a child reads exactly what its parent decided."""
        env = {
            "LAKEHOUSE_DATA_DIR": str(self.data_dir),
            "LAKEHOUSE_BIND_HOST": self.host,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "POSTGRES_URL": self.postgres_url,
            "DAGSTER_PG_URL": self.dagster_postgres_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "DAGSTER_HOME": str(self.dagster_home),
            "LAKEHOUSE_JVM_LIB_DIR": str(self.jvm_lib_dir),
            # MLflow's telemetry client unsets its session variable from a thread while a request reads it
            # (a training run failed with KeyError '_MLFLOW_TELEMETRY_SESSION_ID'); nothing is sent from here
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        if self.spark_master:
            env["SPARK_MASTER"] = self.spark_master
        else:
            env["SPARK_REMOTE"] = self.spark_remote
        if self.partitions_start:
            env["LAKEHOUSE_PARTITIONS_START"] = self.partitions_start
        if self.warehouse_root:
            env["LAKEHOUSE_WAREHOUSE"] = self.warehouse_root
        env.update(self.kafka_transport_env())
        return env

    def kafka_transport_env(self) -> dict[str, str]:
        """KAFKA_SECURITY and its files for a child process (empty for plaintext): names of files only, a child
        reads the password from its file."""
        transport = self.kafka_transport
        if not transport.secured:
            return {}
        env = {"KAFKA_SECURITY": transport.protocol, "KAFKA_SASL_USERNAME": transport.username,
               "KAFKA_SASL_PASSWORD_FILE": str(transport.password_file)}
        if transport.ca_file is not None:
            env["KAFKA_SSL_CA_FILE"] = str(transport.ca_file)
        return env

    # ---- the deployment ----------------------------------------------------------------------
    def ensure_deployment(self, now: datetime | None = None) -> dict:
        """Record when this data directory first ran a stack (idempotent): where partitions start."""
        try:
            return json.loads(self.deployment_file.read_text())
        except (OSError, ValueError):
            pass
        created = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        record = {"created_at": created.strftime(MINUTE_FORMAT)}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.deployment_file.write_text(json.dumps(record) + "\n")
        return record

    def first_window(self, now: datetime | None = None) -> datetime:
        """The first 1-minute window of the bronze partitions (UTC): LAKEHOUSE_PARTITIONS_START, else the
        minute this data directory first ran a stack, else (nothing ran here yet) the start of yesterday."""
        if self.partitions_start:
            return datetime.strptime(self.partitions_start, MINUTE_FORMAT).replace(tzinfo=UTC)
        try:
            created = json.loads(self.deployment_file.read_text())["created_at"]
            return datetime.strptime(created, MINUTE_FORMAT).replace(tzinfo=UTC)
        except (OSError, ValueError, KeyError):
            today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
            return today - timedelta(days=1)

    def ensure_postgres_password(self) -> str:
        """The managed cluster's password, generated once and kept in a 0600 file."""
        return _ensure_secret(self.postgres_password_file)

    def ensure_dashboard_db_password(self) -> str:
        """The read-only role's password, generated once and kept in a 0600 file."""
        return _ensure_secret(self.dashboard_db_password_file)


SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class KafkaTransport:
    """How a Kafka client connects: plaintext, or SASL_SSL (the broker's certificate checked against `ca_file`,
    or the system's trust store without one; a SCRAM-SHA-512 login as `username`). It holds no secret, so it
    may be shown: the password stays in `password_file` and is read only when a client config is built."""

    protocol: Literal["plaintext", "sasl_ssl"] = "plaintext"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None

    @property
    def secured(self) -> bool:
        return self.protocol != "plaintext"

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except (OSError, AttributeError):
            raise ConfigError(
                f"KAFKA_SECURITY={self.protocol} needs the password of Kafka user {self.username!r} in "
                f"{self.password_file}: `lakehouse up` generates it for the managed broker; for another cluster "
                "set KAFKA_SASL_PASSWORD_FILE to a file holding it"
            ) from None

    def librdkafka(self) -> dict[str, str]:
        """The settings of a confluent-kafka (librdkafka) client; empty for plaintext."""
        if not self.secured:
            return {}
        config = {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM_MECHANISM,
                  "sasl.username": self.username, "sasl.password": self.password()}
        if self.ca_file is not None:
            config["ssl.ca.location"] = str(self.ca_file)
        return config

    def java(self, login_module: str = SCRAM_LOGIN_MODULE) -> dict[str, str]:
        """The same as Java client properties (Spark's Kafka source takes them prefixed `kafka.`); a connector
        that shades the Kafka client names its relocated `login_module`."""
        if not self.secured:
            return {}
        config = {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM_MECHANISM,
                  "sasl.jaas.config": f'{login_module} required username="{self.username}" '
                                      f'password="{self.password()}";'}
        if self.ca_file is not None:
            config |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ca_file)}
        return config


def _ensure_secret(path: Path) -> str:
    """A random secret kept in `path` (mode 0600, folder 0700), generated on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return Settings.model_fields[field].validation_alias.choices[0]


def _mebibytes(size: str) -> int:
    """A JVM memory size (JVM_MEMORY: 512m, 2g) in MiB."""
    return int(int(size[:-1]) * {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}[size[-1].lower()])


@cache
def current() -> Settings:
    """The settings of this process, read once."""
    return Settings.from_env()


def _check_url(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(
            f"POSTGRES_URL must look like postgresql://user[:password]@host:port/analytics_db, got {redact(url)!r}"
        )
    return parts


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials as `url`, another database."""
    return urlunsplit(_check_url(url)._replace(path=f"/{dbname}"))


def redact(url: str) -> str:
    """A connection URL fit for logs and messages: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
