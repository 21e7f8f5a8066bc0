"""The resource set of the code location, built from the settings.

Values that may carry credentials (`POSTGRES_URL`) are passed as `dg.EnvVar` when the process has them
in its environment (every process `lakehouse up` starts does), so they are resolved at run time and
never shown in the Dagster UI.
"""

from __future__ import annotations

import dagster as dg

from resources.kafka import KafkaResource
from resources.mlflow import MLflowResource
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.truth import GroundTruthResource
from resources.warehouse import WarehouseResource
from settings import Settings


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource.from_settings(settings),
        "spark": SparkResource(
            remote=None if settings.spark_master else settings.spark_remote,
            master=settings.spark_master,
            jvm_lib_dir=str(settings.jvm_lib_dir),
            driver_memory=settings.spark_driver_memory,
        ),
        "postgres": PostgresResource(
            url=dg.EnvVar("POSTGRES_URL") if settings.external_postgres_url else settings.postgres_url
        ),
        "mlflow": MLflowResource(tracking_uri=settings.mlflow_tracking_uri),
        "warehouse": WarehouseResource(root=settings.warehouse),
        "truth": GroundTruthResource(directory=str(settings.data_dir / "simulator")),
    }
