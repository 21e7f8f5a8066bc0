"""The environment, read once when the code location loads, turned into the resource set.

Local defaults come from `stack.config.StackConfig` (the same ones `lakehouse up` uses). Values that may
carry credentials (`POSTGRES_URL`) are passed as `dg.EnvVar`, so they are resolved at run time and
never shown in the Dagster UI.
"""

from __future__ import annotations

import os

import dagster as dg

from resources.kafka import KafkaResource
from resources.mlflow import MLflowResource
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource
from stack.config import StackConfig


def build_resources(environ: dict[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    env = os.environ if environ is None else environ
    cfg = StackConfig.from_env(dict(env))
    master = env.get("SPARK_MASTER") or None
    return {
        "kafka": KafkaResource(bootstrap_servers=cfg.kafka_bootstrap),
        "spark": SparkResource(
            remote=None if master else cfg.spark_remote,
            master=master,
            jvm_lib_dir=str(cfg.jvm_lib_dir),
            driver_memory=cfg.spark_driver_memory,
        ),
        "postgres": PostgresResource(url=dg.EnvVar("POSTGRES_URL") if env.get("POSTGRES_URL") else cfg.postgres_url),
        "mlflow": MLflowResource(tracking_uri=cfg.mlflow_tracking_uri),
        "warehouse": WarehouseResource(root=env.get("LAKEHOUSE_WAREHOUSE") or str(cfg.warehouse_dir)),
    }
