"""The dashboard (`python -m dashboard`): FastAPI under uvicorn on LAKEHOUSE_BIND_HOST:DASHBOARD_PORT.

It reads PostgreSQL with the read-only role the postgres service creates (or DASHBOARD_POSTGRES_URL), so
the analytics superuser's URL is not handed to it; DASHBOARD_TOKEN, when set, reaches it through the
inherited environment and enables POST /api/generate-test-data."""

from __future__ import annotations

import sys

from settings import PROJECT_ROOT
from stack.procs import ProcessSpec, http_ok
from stack.services.base import Service


class Dashboard(Service):
    name = "dashboard"

    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.settings.dashboard_port}"

    def spec(self) -> ProcessSpec:
        s = self.settings
        # The settings it needs, as settings: ports of the managed services (so it knows them as managed and
        # reports a missing one as stopped), endpoints only for services the environment points elsewhere.
        env = {
            "LAKEHOUSE_DATA_DIR": str(s.data_dir), "LAKEHOUSE_BIND_HOST": s.host,
            "LAKEHOUSE_JVM_LIB_DIR": str(s.jvm_lib_dir), "DASHBOARD_PORT": str(s.dashboard_port),
            "KAFKA_PORT": str(s.kafka_port), "POSTGRES_PORT": str(s.postgres_port), "MLFLOW_PORT": str(s.mlflow_port),
            "DAGSTER_PORT": str(s.dagster_port), "FLINK_REST_PORT": str(s.flink_rest_port),
            "SPARK_CONNECT_PORT": str(s.spark_connect_port), "SPARK_UI_PORT": str(s.spark_ui_port),
            "FLINK_CEP_ENABLED": "1" if s.flink_cep_enabled else "0",
            "SIMULATOR_ENABLED": "1" if s.simulator_enabled else "0", "SIMULATOR_RATE": str(s.simulator_rate),
        }
        for name, value in (("KAFKA_BOOTSTRAP_SERVERS", s.external_kafka), ("MLFLOW_TRACKING_URI", s.external_mlflow),
                            ("SPARK_REMOTE", s.external_spark_remote), ("SPARK_MASTER", s.spark_master),
                            ("LAKEHOUSE_WAREHOUSE", s.warehouse_root)):
            if value:
                env[name] = value
        env.update(s.kafka_transport_env())  # how it reaches Kafka (file names, never a password)
        if s.dashboard_db_read_only:
            env["DASHBOARD_POSTGRES_URL"] = s.dashboard_db_url
        else:  # no read-only login for a server we do not manage: it falls back, and says so in its log
            env["POSTGRES_URL"] = s.dashboard_db_url
        if s.dashboard_token is not None:
            env["DASHBOARD_TOKEN"] = s.dashboard_token.get_secret_value()
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "dashboard"],
            env=env,
            cwd=PROJECT_ROOT,
            ports={"DASHBOARD_PORT": s.dashboard_port},
            healthy=self.healthy,
            start_timeout_s=60,
            stop_timeout_s=15,
        )

    def healthy(self) -> bool:
        """It serves its API (the component health it reports may say otherwise: it answers regardless)."""
        return http_ok(f"{self.endpoint()}/api/generate-test-data")
