"""The services of the local stack, one module each: how it is installed, prepared, started, probed
and bootstrapped. `all_services` is the start order (`down` stops in reverse)."""

from __future__ import annotations

from settings import Settings
from stack.services.alert_loader import AlertLoader
from stack.services.base import Service
from stack.services.dagster import DagsterCode, DagsterDaemon, DagsterWebserver
from stack.services.dashboard import Dashboard
from stack.services.flink_cep import FlinkCEP
from stack.services.kafka import Kafka
from stack.services.mlflow import MLflow
from stack.services.postgres import Postgres
from stack.services.simulator import Simulator
from stack.services.spark_cluster import SparkMaster, SparkWorker
from stack.services.spark_connect import SparkConnect

__all__ = ["AlertLoader", "DagsterCode", "DagsterDaemon", "DagsterWebserver", "Dashboard", "FlinkCEP", "Kafka", "MLflow", "Postgres",
           "Service", "Simulator", "SparkConnect", "SparkMaster", "SparkWorker", "all_services"]


def all_services(settings: Settings, *, stopping: bool = False) -> list[Service]:
    """Every service, in start order (stop order is the reverse). `stopping` includes the Spark cluster also
    when SPARK_CLUSTER is not standalone, so `down` stops one that `up` started with another setting."""
    cep = [FlinkCEP(settings), AlertLoader(settings)] if settings.flink_cep_enabled else []
    cluster = [SparkMaster(settings), SparkWorker(settings)] if settings.spark_cluster == "standalone" or stopping else []
    return [
        Postgres(settings),
        *(Kafka(settings, node) for node in range(1, settings.kafka_brokers + 1)),
        *cep,
        *cluster,
        SparkConnect(settings),
        MLflow(settings),
        DagsterCode(settings),
        DagsterWebserver(settings),
        DagsterDaemon(settings),
        Dashboard(settings),
        *([Simulator(settings)] if settings.simulator_enabled else []),
    ]
