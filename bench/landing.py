"""Landing benchmark: one 1,000,000-event window through the Dagster asset, the bare landing code, and
the simplest honest Spark job on the same offsets.

Starts its own PostgreSQL, Kafka broker and Spark Connect server (free ports, temporary directory),
produces N simulator events inside one minute of broker time, waits for the window to close, then
lands that same offset range alternately

  - bare:  assets.landing.land_windows(...) called directly (no Dagster), and
  - asset: a real Dagster run of `bronze_landing` (dg.materialize with a persistent instance, with the
           sensor's offset tags, its read-back checks included), timed from launch to success,
  - minimal: the baseline a Spark user would write: Kafka batch read of the same ranges, `from_json`
           with the contract's schema, select, Delta overwrite (no validation, no quarantine),

each into fresh table paths, against the same Spark server. Prints rows/s of each, the ratio of
the asset's time to the bare time (median over rounds) and the Spark server's peak memory (VmHWM).
Two floors, same offsets, to a `noop` sink (nothing written), show where landing's time goes: the Kafka
read alone, and the read with `parse_user_events` (every quarantine rule but duplicates).

    .venv/bin/python -m bench.landing [--events 1000000] [--rounds 2] [--driver-memory 4g]
                                      [--spark-cluster standalone [--executor-memory 4g]]

With `--spark-cluster standalone` the Connect server runs on a Spark standalone master and one worker with
every core of the machine (SPARK_CLUSTER=standalone), one executor of --executor-memory (default: the
driver memory, so the executor has the heap the local[*] driver has), instead of local[*].
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from pyspark.sql import functions as F

from analytics_defs.constants import TAG_KAFKA_OFFSETS, TAG_KAFKA_TOPIC
from analytics_defs.partitions import WINDOW_MS, window_key
from assets.bronze import bronze_landing
from assets.landing import land_windows, parse_user_events, read_kafka_range
from bench.common import Services, append_result, peak_rss_mb
from contract.topics import USER_EVENTS
from contract.user_events import SPARK_SCHEMA_DDL
from resources.kafka import KafkaResource, ranges_to_json
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource
from sensors.kafka_windows import plan_windows
from simulator import Simulator, SimulatorConfig, make_producer


def produce_one_window(bootstrap: str, events: int) -> int:
    """Produce `events` simulator messages within one minute of broker time; returns produce seconds."""
    sim = Simulator(SimulatorConfig(seed=42, clock="simulated", count=events, start_ms=int(time.time() * 1000) - 3_600_000))
    payloads = [(m.key, m.value, m.headers) for m in sim.events()]
    producer = make_producer(bootstrap)
    while time.time() % 60 > 2:  # start at the top of a minute, so the burst fits in one window
        time.sleep(0.2)
    started = time.perf_counter()
    for i, (key, value, headers) in enumerate(payloads):
        while True:
            try:
                producer.produce(USER_EVENTS, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--spark-cluster", choices=["local", "standalone"], default="local")
    parser.add_argument("--executor-memory", help="the standalone executor's memory (default: --driver-memory)")
    args = parser.parse_args()
    executor_memory = args.executor_memory or args.driver_memory

    with Services(driver_memory=args.driver_memory, kafka=True, postgres=True, spark=True,
                  spark_cluster=args.spark_cluster, executor_memory=executor_memory) as svc:
        kafka = KafkaResource.from_settings(svc.cfg)
        produce_s = produce_one_window(svc.cfg.kafka_bootstrap, args.events)
        print(f"produced {args.events:,} events in {produce_s:.1f}s ({args.events / produce_s:,.0f}/s)")
        time.sleep(max(0.0, 60 - time.time() % 60) + 2.5)  # let the window close
        with kafka.offset_reader(USER_EVENTS) as reader:
            now_ms = int(time.time() * 1000)
            plan = plan_windows(reader, None, now_ms - 10 * WINDOW_MS, now_ms)
        sizes = [(window_key(r.window_start_ms), r.messages) for r in plan.requests]
        if len(plan.requests) != 1:
            raise SystemExit(f"the burst spread over several windows {sizes}: run again")
        request = plan.requests[0]
        key = window_key(request.window_start_ms)
        window_start = datetime.fromtimestamp(request.window_start_ms / 1000, UTC)
        print(f"window {key}: {request.messages:,} messages")

        spark_resource = SparkResource(remote=svc.cfg.spark_remote)
        spark = spark_resource.get_session()
        root = Path(tempfile.mkdtemp(prefix="bench-warehouse-", dir=svc.cfg.data_dir))
        (root / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(tempdir=str(root / "dagster"))
        tags = {TAG_KAFKA_TOPIC: USER_EVENTS, TAG_KAFKA_OFFSETS: ranges_to_json(request.ranges)}

        def bare(i: int) -> float:
            started = time.perf_counter()
            result = land_windows(spark, svc.cfg.kafka_bootstrap, USER_EVENTS, window_start,
                                  window_start + timedelta(minutes=1), request.ranges,
                                 str(root / f"bare{i}/bronze"), str(root / f"bare{i}/quarantine"))
            assert result.rows_in == request.messages
            return time.perf_counter() - started

        def asset(i: int) -> float:
            resources = {
                "kafka": kafka,
                "spark": spark_resource,
                "warehouse": WarehouseResource(root=str(root / f"asset{i}")),
                "postgres": PostgresResource(url=svc.cfg.postgres_url),
            }
            started = time.perf_counter()
            result = dg.materialize([bronze_landing], partition_key=key, tags=tags, resources=resources, instance=instance)
            elapsed = time.perf_counter() - started
            assert result.success
            return elapsed

        def window_rows():
            return read_kafka_range(spark, svc.cfg.kafka_bootstrap, USER_EVENTS, request.ranges)

        def minimal(i: int) -> float:
            started = time.perf_counter()
            (window_rows().select(F.from_json(F.col("value").cast("string"), SPARK_SCHEMA_DDL).alias("e")).select("e.*")
             .write.format("delta").mode("overwrite").save(str(root / f"minimal{i}")))
            return time.perf_counter() - started

        def floor(validate: bool) -> float:
            started = time.perf_counter()
            raw = window_rows()
            (parse_user_events(raw) if validate else raw).write.format("noop").mode("overwrite").save()
            return time.perf_counter() - started

        bare_s, asset_s, minimal_s, read_s, validate_s = [], [], [], [], []
        for i in range(args.rounds):
            minimal_s.append(minimal(i))
            bare_s.append(bare(i))
            asset_s.append(asset(i))
            read_s.append(floor(validate=False))
            validate_s.append(floor(validate=True))
            print(f"round {i + 1}: minimal {minimal_s[-1]:.2f}s, bare {bare_s[-1]:.2f}s, asset {asset_s[-1]:.2f}s, "
                  f"read {read_s[-1]:.2f}s, read + validate {validate_s[-1]:.2f}s")
        b, a, m = statistics.median(bare_s), statistics.median(asset_s), statistics.median(minimal_s)
        read, validated = statistics.median(read_s), statistics.median(validate_s)
        spark_peak = peak_rss_mb(svc.pid("spark-connect"))
        if args.spark_cluster == "standalone":
            spark_on = (f"Spark standalone: master + 1 worker, {svc.cfg.spark_worker_cores} cores, "
                        f"executor memory {executor_memory}")
            executor_peak = f"; worker + executor peak {peak_rss_mb(svc.pid('spark-worker')):,.0f} MB"
        else:
            spark_on, executor_peak = f"Spark local[{svc.cfg.spark_local_cores}]", ""
        lines = [
            f"events in window: {request.messages:,}; {spark_on}",
            f"bare script:  median {b:.2f}s  -> {request.messages / b:,.0f} events/s   (runs: {', '.join(f'{x:.2f}' for x in bare_s)})",
            f"dagster run:  median {a:.2f}s  -> {request.messages / a:,.0f} events/s   (runs: {', '.join(f'{x:.2f}' for x in asset_s)})",
            f"minimal Spark: median {m:.2f}s  -> {request.messages / m:,.0f} events/s   (runs: {', '.join(f'{x:.2f}' for x in minimal_s)})",
            f"floors, no write: Kafka read median {read:.2f}s, read + parse + validate {validated:.2f}s",
            f"asset / bare: {a / b:.3f}x; bare / minimal: {b / m:.2f}x; asset / minimal: {a / m:.2f}x (target <= 1.3x)",
            f"Spark Connect server peak memory (VmHWM): {spark_peak:,.0f} MB (driver memory {args.driver_memory}){executor_peak}",
        ]
        print("\n".join(lines))
        command = f"-m bench.landing --events {args.events} --rounds {args.rounds}"
        if args.spark_cluster != "local":
            command += f" --spark-cluster {args.spark_cluster}"
        append_result("Landing (bench/landing.py)", command, lines)
        instance.dispose()
        spark.stop()  # before the server stops: pyspark's exit hook would retry against a dead server


if __name__ == "__main__":
    main()
