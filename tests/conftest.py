"""Shared fixtures. Integration fixtures start real services (Kafka, PostgreSQL, Spark Connect,
MLflow) on free ports under one temporary directory, with the same start-up code `lakehouse up` uses,
and stop them at the end of the session, also when tests fail or the session is interrupted."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from settings import Settings
from stack.procs import ProcessSpec, Supervisor, free_port
from stack.services import Dashboard, Kafka, MLflow, Postgres, Service, SparkConnect, SparkMaster, SparkWorker


def pytest_configure(config: pytest.Config) -> None:
    # The code location's partitions start where the deployment's data starts (settings.first_window),
    # which for the checkout is whatever `make up` last did in ./.lakehouse. Tests land data of the last
    # week and must not depend on that: they set the start themselves, before anything reads settings.
    start = (datetime.now(UTC) - timedelta(days=8)).strftime("%Y-%m-%d-00:00")
    os.environ.setdefault("LAKEHOUSE_PARTITIONS_START", start)
    os.environ.setdefault("LAKEHOUSE_EVENT_LOOKBACK_DAYS", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as the stack's processes (settings.service_env)

    # A SIGTERM (CI timeout or cancel) unwinds like Ctrl-C: pytest then runs the fixture teardowns
    # that stop the services this session started.
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _test_config(root: Path) -> Settings:
    return Settings(
        data_dir=root,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap="384m",
        postgres_port=free_port(),
        mlflow_port=free_port(),
        dagster_port=free_port(),
        dagster_code_port=free_port(),
        spark_connect_port=free_port(),
        spark_ui_port=free_port(),
        spark_driver_memory=os.environ.get("TEST_SPARK_DRIVER_MEMORY", "2g"),
        spark_local_cores="2",
        flink_rest_port=free_port(),
        dashboard_port=free_port(),
        simulator_enabled=False,
    )


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="lakehouse-it-"))
    root.chmod(0o755)  # the postgres OS user must traverse it when tests run as root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_cfg(stack_root: Path) -> Settings:
    return _test_config(stack_root)


@pytest.fixture(scope="session")
def supervisor(stack_cfg: Settings) -> Supervisor:
    return Supervisor(stack_cfg.run_dir, stack_cfg.log_dir, stack_cfg.host)


class _Running:
    """Services started by this session, stopped in reverse order at exit (atexit as a last resort)."""

    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor
        self.started: list[Service] = []
        atexit.register(self.stop_all)

    def start(self, service: Service) -> None:
        service.prepare()
        self.started.append(service)
        self.supervisor.start(service.spec())
        service.bootstrap()

    def stop_all(self) -> None:
        # all at once: a test session's teardown need not wait for each service's stop in turn (a Spark
        # Connect server on a standalone cluster alone took over a minute)
        started, self.started = self.started[::-1], []
        self.supervisor.stop_together([service.spec() for service in started])


@pytest.fixture(scope="session")
def services(supervisor: Supervisor) -> Iterator[_Running]:
    running = _Running(supervisor)
    yield running
    running.stop_all()


@pytest.fixture(scope="session")
def postgres_service(stack_cfg: Settings, services: _Running) -> Postgres:
    service = Postgres(stack_cfg)
    service.install()
    services.start(service)
    return service


@pytest.fixture(scope="session")
def postgres_url(postgres_service: Postgres, stack_cfg: Settings) -> str:
    """URL of the migrated analytics database of a real, test-owned PostgreSQL."""
    return stack_cfg.postgres_url


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_cfg: Settings, services: _Running) -> str:
    """bootstrap.servers of a real, test-owned KRaft broker with the stack's topics created."""
    services.start(Kafka(stack_cfg))
    return stack_cfg.kafka_bootstrap


@pytest.fixture(scope="session")
def spark_remote(stack_cfg: Settings, services: _Running) -> str:
    """sc:// URL of a real, test-owned Spark Connect server with the Kafka source and Delta."""
    services.start(SparkConnect(stack_cfg))
    return stack_cfg.spark_remote


@pytest.fixture(scope="module")
def spark_cluster(stack_root: Path) -> Iterator[Settings]:
    """Settings of a real Spark standalone master and worker (SPARK_CLUSTER=standalone) with a Spark Connect
    server whose application runs on them, on free ports in a data dir of their own; stopped after the module."""
    cfg = Settings(data_dir=stack_root / "spark-cluster", spark_cluster="standalone", spark_connect_port=free_port(),
                   spark_ui_port=free_port(), spark_master_port=free_port(), spark_master_ui_port=free_port(),
                   spark_worker_ui_port=free_port(), spark_driver_memory="1g", spark_worker_cores=2,
                   spark_worker_memory="1g", spark_executor_memory="1g", simulator_enabled=False)
    running = _Running(Supervisor(cfg.run_dir, cfg.log_dir, cfg.host))
    try:
        for service in (SparkMaster(cfg), SparkWorker(cfg), SparkConnect(cfg)):
            running.start(service)
        yield cfg
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
def spark(spark_remote: str):
    from resources.spark import SparkResource

    session = SparkResource(remote=spark_remote).get_session()
    yield session
    # Stop the client before the server goes away: pyspark's exit hook would otherwise retry
    # its clean-up calls against a dead server for minutes.
    session.stop()


DASHBOARD_TOKEN = "integration-test-token"


def _dashboard_world(stack_cfg: Settings, name: str, running: tuple[str, ...], **changes) -> Settings:
    """Settings of a world the dashboard tests own, so what they assert does not depend on what other modules
    start or write: a data dir `name` (run dir, logs, warehouse) nobody else uses; a migrated database `name`
    on the session's PostgreSQL that only these fixtures fill, read with the read-only role granted as
    `lakehouse up` grants it on the analytics database; free ports for every service this world does not run
    (Spark, MLflow, Dagster, Flink), so they show as stopped even while the session runs them elsewhere; and
    pid files only for the session services in `running`."""
    import psycopg
    from psycopg import sql

    from stack.migrate import migrate

    world = stack_cfg.but(data_dir=stack_cfg.data_dir / name, analytics_db=name, dashboard_port=free_port(),
                          spark_connect_port=free_port(), spark_ui_port=free_port(), mlflow_port=free_port(),
                          dagster_port=free_port(), dagster_code_port=free_port(), flink_rest_port=free_port(), **changes)
    world.run_dir.mkdir(parents=True)
    # The same cluster, so the same logins: the superuser's and the read-only role's password files.
    world.postgres_password_file.parent.symlink_to(stack_cfg.postgres_password_file.parent)
    own, shared = (Supervisor(c.run_dir, c.log_dir, c.host) for c in (world, stack_cfg))
    for service in running:
        own.pid_file(service).symlink_to(shared.pid_file(service))
    with psycopg.connect(stack_cfg.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(world.analytics_db)))
    migrate(world.postgres_url)
    Postgres(world).ensure_read_only_role()
    return world


# Endpoints the dashboard's spec passes only when its settings name them. A process inherits them from this
# one, where other modules may have left them (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI).
_INHERITABLE_ENDPOINTS = ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_URL", "DASHBOARD_POSTGRES_URL", "MLFLOW_TRACKING_URI",
                          "SPARK_REMOTE", "SPARK_MASTER", "LAKEHOUSE_WAREHOUSE", "DASHBOARD_TOKEN")


class _WorldDashboard(Dashboard):
    """The dashboard's process as `lakehouse up` starts it, seeing only its world's settings: an inherited
    endpoint its settings do not name is passed empty, which the settings read as unset."""

    def spec(self) -> ProcessSpec:
        spec = super().spec()
        spec.env = {**dict.fromkeys(_INHERITABLE_ENDPOINTS, ""), **spec.env}
        return spec


@contextmanager
def _dashboard_process(cfg: Settings) -> Iterator[str]:
    """A real dashboard process (`python -m dashboard`) in `cfg`'s world: its pid file lands in that world's
    run dir."""
    running = _Running(Supervisor(cfg.run_dir, cfg.log_dir, cfg.host))
    running.start(_WorldDashboard(cfg))
    try:
        yield f"http://{cfg.host}:{cfg.dashboard_port}"
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
def dashboard_cfg(stack_cfg: Settings, postgres_url: str, kafka_bootstrap: str) -> Settings:
    """The dashboard's own world (`_dashboard_world`) with a test-traffic token: the session's PostgreSQL and
    Kafka run in it, nothing else does."""
    return _dashboard_world(stack_cfg, "dashboard_analytics", running=("postgres", "kafka"),
                            dashboard_token=SecretStr(DASHBOARD_TOKEN))


@pytest.fixture(scope="session")
def dashboard_writer_url(dashboard_cfg: Settings) -> str:
    """The dashboard world's database with the owner's login, as the platform's writers use it."""
    return dashboard_cfg.postgres_url


@pytest.fixture(scope="session")
def dashboard_url(dashboard_cfg: Settings) -> Iterator[str]:
    """URL of a real dashboard process in its own world."""
    with _dashboard_process(dashboard_cfg) as url:
        yield url


@pytest.fixture(scope="session")
def dashboard_seeded(dashboard_cfg: Settings, dashboard_writer_url: str, kafka_bootstrap: str) -> dict:
    """Alerts, landed windows, segments, events, quarantine rows and a committed loader offset, put in
    place once per session (tests/dashboard_data.py) in the dashboard's world; returns the alert rows."""
    from resources.warehouse import WarehouseResource
    from tests import dashboard_data as data

    rows = data.seed_alerts(dashboard_writer_url, 120)
    data.seed_tables(dashboard_writer_url)
    data.produce_events(kafka_bootstrap, 500)
    data.commit_alert_loader_offset(kafka_bootstrap)
    data.write_quarantine(WarehouseResource(root=dashboard_cfg.warehouse).table_path("bronze/quarantine"))
    return {"alerts": rows}


@pytest.fixture(scope="session")
def empty_dashboard_url(stack_cfg: Settings, postgres_url: str) -> Iterator[str]:
    """A second dashboard process in a world of its own where nothing exists yet (an empty, migrated
    database), with Kafka pointed at a port nobody listens on and no token configured: the dashboard before
    anything exists, with a component down."""
    cfg = _dashboard_world(stack_cfg, "dashboard_empty", running=("postgres",),
                           external_kafka=f"127.0.0.1:{free_port()}", dashboard_token=None)
    with _dashboard_process(cfg) as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_uri(stack_cfg: Settings, postgres_url: str, services: _Running) -> str:
    """Tracking URI of a real, test-owned MLflow server backed by the test PostgreSQL."""
    services.start(MLflow(stack_cfg))
    return stack_cfg.mlflow_tracking_uri
