"""Bronze backfill benchmark: 60 one-minute windows landed by multi-window Dagster runs (the asset's
backfill policy, up to 30 windows per run, one Spark read each) against 60 single-window runs, on the
same messages, in one script, on services of its own (free ports, temporary directory).

The windows are made without waiting an hour: the benchmark's own broker has `user-events` switched
to CreateTime and the messages are produced in time order with timestamps spread over an hour that has
passed (monotonic per partition, as LogAppendTime would make them). Each approach lands into fresh
tables through real Dagster runs (`dg.materialize`, persistent instance), and both results reconcile
with Kafka.

    .venv/bin/python -m bench.backfill [--windows 60] [--per-window 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dagster as dg
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from analytics_defs.constants import BRONZE_QUARANTINE_TABLE, BRONZE_USER_EVENTS_TABLE
from analytics_defs.partitions import WINDOW_MS, window_key
from assets.bronze import MAX_WINDOWS_PER_RUN, bronze_landing
from assets.reconciliation import reconcile
from bench.common import Services, append_result
from contract.topics import USER_EVENTS
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource
from simulator import Simulator, SimulatorConfig, make_producer


def produce_spread(kafka: KafkaResource, windows: int, per_window: int) -> int:
    """`windows * per_window` simulator messages with broker timestamps spread over `windows` past minutes;
    returns the first window's start (ms)."""
    admin = kafka.admin()
    resource = ConfigResource(ConfigResource.Type.TOPIC, USER_EVENTS, incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()
    first_ms = (int(time.time() * 1000) // WINDOW_MS - windows - 5) * WINDOW_MS
    total = windows * per_window
    sim = Simulator(SimulatorConfig(seed=3, clock="simulated", count=total, rate=total / (windows * 60),
                                    start_ms=first_ms, malformed_rate=0.002))
    producer = make_producer(kafka.bootstrap_servers, security=kafka.transport.librdkafka())
    for i, message in enumerate(sim.events()):
        stamp = first_ms + i * (windows * WINDOW_MS) // total
        producer.produce(USER_EVENTS, value=message.value, key=message.key, timestamp=stamp,
                         headers=message.headers)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return first_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=60)
    parser.add_argument("--per-window", type=int, default=2000)
    args = parser.parse_args()
    with Services(driver_memory="4g", kafka=True, postgres=True, spark=True) as svc:
        kafka = KafkaResource.from_settings(svc.cfg)
        first_ms = produce_spread(kafka, args.windows, args.per_window)
        keys = [window_key(first_ms + i * WINDOW_MS) for i in range(args.windows)]
        root = Path(tempfile.mkdtemp(prefix="bench-backfill-", dir=svc.cfg.data_dir))
        (root / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(tempdir=str(root / "dagster"))
        spark = SparkResource(remote=svc.cfg.spark_remote)
        spark.get_session().sql("SELECT 1").collect()  # warm the server before either approach is timed

        def resources(name: str) -> dict:
            return {"kafka": kafka, "spark": spark, "warehouse": WarehouseResource(root=str(root / name)),
                    "postgres": PostgresResource(url=svc.cfg.postgres_url)}

        def single() -> tuple[float, int]:
            res = resources("single")
            started = time.perf_counter()
            for key in keys:
                assert dg.materialize([bronze_landing], partition_key=key, resources=res, instance=instance).success
            return time.perf_counter() - started, len(keys)

        def multi() -> tuple[float, int]:
            res = resources("multi")
            started, runs = time.perf_counter(), 0
            for i in range(0, len(keys), MAX_WINDOWS_PER_RUN):
                chunk = keys[i:i + MAX_WINDOWS_PER_RUN]
                tags = {"dagster/asset_partition_range_start": chunk[0], "dagster/asset_partition_range_end": chunk[-1]}
                assert dg.materialize([bronze_landing], tags=tags, resources=res, instance=instance).success
                runs += 1
            return time.perf_counter() - started, runs

        multi_s, multi_runs = multi()
        single_s, single_runs = single()
        balanced = []
        for name in ("single", "multi"):
            warehouse = WarehouseResource(root=str(root / name))
            balances = reconcile(kafka, USER_EVENTS, warehouse.table_path(BRONZE_USER_EVENTS_TABLE),
                                 warehouse.table_path(BRONZE_QUARANTINE_TABLE), first_ms,
                                 first_ms + args.windows * WINDOW_MS)
            balanced.append(f"{name}: {len(balances)} windows, "
                            f"{'all reconcile' if all(b.status == 'ok' for b in balances) else 'MISMATCH'}, "
                            f"{sum(b.kafka_messages for b in balances):,} messages")
        instance.dispose()
        spark.get_session().stop()  # before the server stops: pyspark's exit hook would retry against it
    total = args.windows * args.per_window
    lines = [
        f"{args.windows} windows x {args.per_window:,} messages = {total:,} messages (same offsets for both)",
        f"single-window runs: {single_runs} runs in {single_s:7.1f}s -> {total / single_s:,.0f} msg/s",
        (f"multi-window runs:  {multi_runs} runs in {multi_s:7.1f}s -> {total / multi_s:,.0f} msg/s "
        f"(up to {MAX_WINDOWS_PER_RUN} windows per run)"),
        f"speed-up: {single_s / multi_s:.1f}x (target >= 5x)",
        *balanced,
    ]
    print("\n".join(lines))
    append_result("Bronze backfill (bench/backfill.py)",
                  f"-m bench.backfill --windows {args.windows} --per-window {args.per_window}", lines)


if __name__ == "__main__":
    main()
