"""Driving the lakehouse in a test the way the daemon does: produce to Kafka, tick the window sensor and
land what it requests, tick the silver refresh sensor and build the days it asks for."""

from __future__ import annotations

import time

import dagster as dg

from analytics_defs.daily import sql_models
from analytics_defs.partitions import WINDOW_MS, window_key
from assets.bronze import bronze_landing
from assets.features import user_features
from assets.silver import silver_user_events
from contract.topics import USER_EVENTS
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource
from sensors.kafka_windows import user_events_window_sensor
from sensors.silver_refresh import RefreshCursor, silver_refresh_sensor
from simulator import make_producer

DAILY_ASSETS = [silver_user_events, user_features, *sql_models]


def produce(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in messages:
        producer.produce(USER_EVENTS, value=value, key=key)
        producer.poll(0)
    assert producer.flush(60) == 0


def wait_until_closed() -> None:
    closes = (int(time.time() * 1000) // WINDOW_MS + 1) * WINDOW_MS + 2500
    time.sleep(max(0.0, closes / 1000 - time.time()))


class Lakehouse:
    """The module's resources, Dagster instance and helpers to land windows and refresh days."""

    def __init__(self, kafka_bootstrap: str, spark_remote: str, postgres_url: str, warehouse_root,
                 **more_resources):
        self.kafka = KafkaResource(bootstrap_servers=kafka_bootstrap)
        self.warehouse = WarehouseResource(root=str(warehouse_root))
        self.resources = {
            "kafka": self.kafka,
            "spark": SparkResource(remote=spark_remote),
            "warehouse": self.warehouse,
            "postgres": PostgresResource(url=postgres_url),
            **more_resources,
        }
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.refresh_cursor: str | None = None

    def path(self, table: str) -> str:
        return self.warehouse.table_path(table)

    def land_new_windows(self, since_ms: int) -> list[str]:
        """Tick the window sensor and land every window it requests (as the daemon would)."""
        cursor = self.cursor or window_key(since_ms // WINDOW_MS * WINDOW_MS - WINDOW_MS)
        keys = []
        while True:
            with dg.build_sensor_context(cursor=cursor, resources={"kafka": self.kafka}) as context:
                result = user_events_window_sensor(context)
            cursor = result.cursor or cursor
            if not result.run_requests:
                break
            for request in result.run_requests:
                run = dg.materialize([bronze_landing], partition_key=request.partition_key, tags=request.tags,
                                     resources=self.resources, instance=self.instance)
                assert run.success
                keys.append(request.partition_key)
        self.cursor = cursor
        return keys

    def refresh_requests(self) -> list[str]:
        """The silver days the refresh sensor asks for, over as many ticks as it takes (its refresh
        interval set aside: the test does not wait minutes between refreshes of a day)."""
        days = []
        while True:
            cursor = RefreshCursor.parse(self.refresh_cursor)
            cursor.requested_at = {}
            with dg.build_sensor_context(cursor=cursor.dump(), instance=self.instance) as context:
                result = silver_refresh_sensor(context)
            self.refresh_cursor = result.cursor
            if not result.run_requests:
                return sorted(days)
            days += [r.partition_key for r in result.run_requests]

    def build_day(self, day: str, assets=None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(assets or DAILY_ASSETS, partition_key=day, resources=self.resources,
                              instance=self.instance, raise_on_error=raise_on_error)

    def materialize(self, assets, raise_on_error: bool = True, **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(assets, resources=self.resources, instance=self.instance, raise_on_error=raise_on_error,
                              **kwargs)


