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
from pathlib import Path

import pytest
from pydantic import SecretStr

from settings import Settings
from stack.procs import Supervisor, free_port
from stack.services import Dashboard, Kafka, MLflow, Postgres, Service, SparkConnect


def pytest_configure(config: pytest.Config) -> None:
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
        while self.started:
            self.supervisor.stop(self.started.pop().spec())


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


@pytest.fixture(scope="session")
def spark(spark_remote: str):
    from resources.spark import SparkResource

    session = SparkResource(remote=spark_remote).get_session()
    yield session
    # Stop the client before the server goes away: pyspark's exit hook would otherwise retry
    # its clean-up calls against a dead server for minutes.
    session.stop()


DASHBOARD_TOKEN = "integration-test-token"


@pytest.fixture(scope="session")
def dashboard_cfg(stack_cfg: Settings, postgres_url: str, kafka_bootstrap: str) -> Settings:
    """The test stack's settings with a test-traffic token (PostgreSQL and Kafka running)."""
    return stack_cfg.but(dashboard_token=SecretStr(DASHBOARD_TOKEN))


@pytest.fixture(scope="session")
def dashboard_url(dashboard_cfg: Settings, services: _Running) -> str:
    """URL of a real dashboard process (`python -m dashboard`, started as `lakehouse up` starts it)."""
    services.start(Dashboard(dashboard_cfg))
    return f"http://{dashboard_cfg.host}:{dashboard_cfg.dashboard_port}"


@pytest.fixture(scope="session")
def dashboard_seeded(dashboard_cfg: Settings, postgres_url: str, kafka_bootstrap: str) -> dict:
    """Alerts, landed windows, segments, events, quarantine rows and a committed loader offset, put in
    place once per session (tests/dashboard_data.py); returns the alert rows."""
    from resources.warehouse import WarehouseResource
    from tests import dashboard_data as data

    rows = data.seed_alerts(postgres_url, 120)
    data.seed_tables(postgres_url)
    data.produce_events(kafka_bootstrap, 500)
    data.commit_alert_loader_offset(kafka_bootstrap)
    data.write_quarantine(WarehouseResource(root=dashboard_cfg.warehouse).table_path("bronze/quarantine"))
    return {"alerts": rows}


@pytest.fixture(scope="session")
def empty_dashboard_url(stack_cfg: Settings, postgres_url: str) -> Iterator[str]:
    """A second dashboard process on an empty, migrated database, with Kafka pointed at a port nobody listens
    on and no token configured: the dashboard before anything exists, with a component down."""
    import psycopg

    from settings import with_database
    from stack.migrate import migrate

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dashboard_empty")
        conn.execute("CREATE DATABASE dashboard_empty")
    empty_url = with_database(postgres_url, "dashboard_empty")
    migrate(empty_url)
    cfg = stack_cfg.but(data_dir=stack_cfg.data_dir / "empty-dashboard", dashboard_port=free_port(),
                        external_kafka=f"127.0.0.1:{free_port()}", dashboard_postgres_url=SecretStr(empty_url),
                        dashboard_token=None)
    supervisor = Supervisor(cfg.run_dir, cfg.log_dir, cfg.host)
    service = Dashboard(cfg)
    supervisor.start(service.spec())
    try:
        yield f"http://{cfg.host}:{cfg.dashboard_port}"
    finally:
        supervisor.stop(service.spec())


@pytest.fixture(scope="session")
def mlflow_uri(stack_cfg: Settings, postgres_url: str, services: _Running) -> str:
    """Tracking URI of a real, test-owned MLflow server backed by the test PostgreSQL."""
    services.start(MLflow(stack_cfg))
    return stack_cfg.mlflow_tracking_uri
