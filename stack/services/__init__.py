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
from stack.services.spark_connect import SparkConnect

__all__ = ["AlertLoader", "DagsterCode", "DagsterDaemon", "DagsterWebserver", "Dashboard", "FlinkCEP", "Kafka", "MLflow", "Postgres",
           "Service", "Simulator", "SparkConnect", "all_services"]


def all_services(settings: Settings) -> list[Service]:
    """Every service, in start order (stop order is the reverse)."""
    cep = [FlinkCEP(settings), AlertLoader(settings)] if settings.flink_cep_enabled else []
    return [
        Postgres(settings),
        Kafka(settings),
        *cep,
        SparkConnect(settings),
        MLflow(settings),
        DagsterCode(settings),
        DagsterWebserver(settings),
        DagsterDaemon(settings),
        Dashboard(settings),
        *([Simulator(settings)] if settings.simulator_enabled else []),
    ]
