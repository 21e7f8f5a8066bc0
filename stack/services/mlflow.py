"""MLflow: `mlflow server` with its backend store in PostgreSQL and artifacts under the data dir, run as one
process (stack/mlflow_server.py)."""

from __future__ import annotations

import sys

from settings import PROJECT_ROOT, ConfigError
from stack.procs import ProcessSpec, http_ok
from stack.services.base import Service


class MLflow(Service):
    name = "mlflow"

    @property
    def managed(self) -> bool:
        return self.settings.external_mlflow is None

    def endpoint(self) -> str:
        return self.settings.mlflow_tracking_uri

    def prepare(self) -> None:
        (self.settings.data_dir / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        s = self.settings
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "stack.mlflow_server", "--host", s.host, "--port", str(s.mlflow_port),
                  "--workers", "1", "--serve-artifacts",
                  "--artifacts-destination", str(s.data_dir / "mlflow" / "artifacts")],
            cwd=PROJECT_ROOT,
            # The store URI travels in the environment, not argv, so `ps` never shows a password.
            env={
                "MLFLOW_BACKEND_STORE_URI": s.mlflow_postgres_url.replace("postgresql://", "postgresql+psycopg://", 1),
                # The GenAI job runner (a Huey consumer per job type, ~250 MB each) is not used here.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            ports={"MLFLOW_PORT": s.mlflow_port},
            healthy=self.healthy,
            start_timeout_s=120,
        )

    def healthy(self) -> bool:
        return http_ok(f"{self.settings.mlflow_tracking_uri}/health")

    def check_external(self) -> None:
        if not self.healthy():
            raise ConfigError(f"MLflow at MLFLOW_TRACKING_URI={self.settings.mlflow_tracking_uri} does not answer "
                              "/health: point it at a running server, or unset it to run the project's own.")
