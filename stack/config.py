"""Where every local service lives and listens: read once from the environment, with local defaults.

A service is *managed* (started and stopped by `lakehouse up/down`) unless the environment points at
an existing one: `KAFKA_BOOTSTRAP_SERVERS`, `POSTGRES_URL`, `MLFLOW_TRACKING_URI` and `SPARK_REMOTE`
each switch the stack from "start our own" to "use that one". Tests build a `StackConfig` of their own
on free ports and temporary directories, so the same start-up code serves `up` and the test suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_DEFAULTS: dict[str, str] = {
    "LAKEHOUSE_DATA_DIR": "./.lakehouse",
    "LAKEHOUSE_BIND_HOST": "127.0.0.1",
    "KAFKA_BOOTSTRAP_SERVERS": "(managed broker on KAFKA_PORT)",
    "KAFKA_PORT": "9092",
    "KAFKA_CONTROLLER_PORT": "9093",
    "KAFKA_HEAP": "512m",
    "KAFKA_USER_EVENTS_PARTITIONS": "2",
    "POSTGRES_URL": "(managed cluster on POSTGRES_PORT, database analytics_db)",
    "POSTGRES_PORT": "5433",
    "DAGSTER_POSTGRES_DB": "dagster",
    "MLFLOW_POSTGRES_DB": "mlflow",
    "MLFLOW_TRACKING_URI": "(managed server on MLFLOW_PORT)",
    "MLFLOW_PORT": "5000",
    "DAGSTER_PORT": "3000",
    "SPARK_REMOTE": "(managed Spark Connect server on SPARK_CONNECT_PORT)",
    "SPARK_MASTER": "(unset: attach to Spark Connect)",
    "SPARK_CONNECT_PORT": "15002",
    "SPARK_DRIVER_MEMORY": "4g",
    "SPARK_LOCAL_CORES": "*",
    "FLINK_REST_PORT": "8081",
    "FLINK_JOBMANAGER": "(unset: embedded mini-cluster)",
    "FLINK_CEP_ENABLED": "1",
    "DASHBOARD_PORT": "8082",
    "SIMULATOR_ENABLED": "1",
    "SIMULATOR_RATE": "200",
}


class ConfigError(RuntimeError):
    """A setting is missing or wrong. The message says what to set."""


def _int(env: dict[str, str], name: str) -> int:
    raw = env.get(name) or ENV_DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not 0 < value < 65536 and name.endswith("_PORT"):
        raise ConfigError(f"{name}={value} is not a valid TCP port")
    return value


def _bool(env: dict[str, str], name: str) -> bool:
    return (env.get(name) or ENV_DEFAULTS[name]).strip().lower() not in ("0", "false", "no", "off")


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


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    user_events_partitions: int = 2
    external_kafka: str | None = None
    postgres_port: int = 5433
    external_postgres_url: str | None = None
    analytics_db: str = "analytics_db"
    dagster_db: str = "dagster"
    mlflow_db: str = "mlflow"
    mlflow_port: int = 5000
    external_mlflow: str | None = None
    dagster_port: int = 3000
    spark_connect_port: int = 15002
    external_spark_remote: str | None = None
    spark_driver_memory: str = "4g"
    spark_local_cores: str = "*"
    flink_rest_port: int = 8081
    flink_cep_enabled: bool = True
    dashboard_port: int = 8082
    simulator_enabled: bool = True
    simulator_rate: int = 200
    jvm_lib_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "jvm" / "lib")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("LAKEHOUSE_DATA_DIR") or ENV_DEFAULTS["LAKEHOUSE_DATA_DIR"])
        if not data_dir.is_absolute():
            data_dir = (PROJECT_ROOT / data_dir).resolve()
        return cls(
            data_dir=data_dir,
            host=env.get("LAKEHOUSE_BIND_HOST") or ENV_DEFAULTS["LAKEHOUSE_BIND_HOST"],
            kafka_port=_int(env, "KAFKA_PORT"),
            kafka_controller_port=_int(env, "KAFKA_CONTROLLER_PORT"),
            kafka_heap=env.get("KAFKA_HEAP") or ENV_DEFAULTS["KAFKA_HEAP"],
            user_events_partitions=_int(env, "KAFKA_USER_EVENTS_PARTITIONS"),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            postgres_port=_int(env, "POSTGRES_PORT"),
            external_postgres_url=env.get("POSTGRES_URL") or None,
            dagster_db=env.get("DAGSTER_POSTGRES_DB") or ENV_DEFAULTS["DAGSTER_POSTGRES_DB"],
            mlflow_db=env.get("MLFLOW_POSTGRES_DB") or ENV_DEFAULTS["MLFLOW_POSTGRES_DB"],
            mlflow_port=_int(env, "MLFLOW_PORT"),
            external_mlflow=env.get("MLFLOW_TRACKING_URI") or None,
            dagster_port=_int(env, "DAGSTER_PORT"),
            spark_connect_port=_int(env, "SPARK_CONNECT_PORT"),
            external_spark_remote=env.get("SPARK_REMOTE") or None,
            spark_driver_memory=env.get("SPARK_DRIVER_MEMORY") or ENV_DEFAULTS["SPARK_DRIVER_MEMORY"],
            spark_local_cores=env.get("SPARK_LOCAL_CORES") or ENV_DEFAULTS["SPARK_LOCAL_CORES"],
            flink_rest_port=_int(env, "FLINK_REST_PORT"),
            flink_cep_enabled=_bool(env, "FLINK_CEP_ENABLED"),
            dashboard_port=_int(env, "DASHBOARD_PORT"),
            simulator_enabled=_bool(env, "SIMULATOR_ENABLED"),
            simulator_rate=_int(env, "SIMULATOR_RATE"),
        )

    def but(self, **changes) -> StackConfig:
        return replace(self, **changes)

    # ---- derived endpoints -------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"{self.host}:{self.kafka_port}"

    @property
    def postgres_url(self) -> str:
        """The analytics database. Managed cluster: trust auth on loopback, no password exists."""
        if self.external_postgres_url:
            return self.external_postgres_url
        return f"postgresql://lakehouse@{self.host}:{self.postgres_port}/{self.analytics_db}"

    @property
    def dagster_postgres_url(self) -> str:
        return with_database(self.postgres_url, self.dagster_db)

    @property
    def mlflow_postgres_url(self) -> str:
        return with_database(self.postgres_url, self.mlflow_db)

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
    def warehouse_dir(self) -> Path:
        """Delta tables (bronze, silver, ...)."""
        return self.data_dir / "warehouse"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    def service_env(self) -> dict[str, str]:
        """The environment every process of the stack (and every Dagster run) sees."""
        return {
            "LAKEHOUSE_DATA_DIR": str(self.data_dir),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "POSTGRES_URL": self.postgres_url,
            "DAGSTER_PG_URL": self.dagster_postgres_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "SPARK_REMOTE": self.spark_remote,
            "DAGSTER_HOME": str(self.dagster_home),
            "LAKEHOUSE_JVM_LIB_DIR": str(self.jvm_lib_dir),
        }
