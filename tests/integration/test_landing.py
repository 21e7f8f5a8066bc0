"""Micro-batch landing end to end: simulator -> real Kafka -> window sensor -> bronze asset on real
Spark Connect + Delta, with reruns, backfills, a killed write, reconciliation and a delta-rs reader."""

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from analytics_defs.constants import (
    BRONZE_QUARANTINE_TABLE,
    BRONZE_USER_EVENTS_TABLE,
    TAG_KAFKA_OFFSETS,
    TAG_KAFKA_TOPIC,
)
from analytics_defs.partitions import WINDOW_MS, window_key, window_start_ms
from assets.bronze import bronze_landing
from assets.delta import window_range_predicate
from assets.reconciliation import balance_windows, reconcile
from contract.topics import USER_EVENTS
from contract.user_events import QuarantineReason
from resources.kafka import KafkaResource, PartitionRange, ranges_from_json
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from resources.warehouse import WarehouseResource
from sensors.kafka_windows import user_events_window_sensor
from settings import PROJECT_ROOT
from simulator import SimulatorConfig, load_ground_truth, make_producer, run

pytestmark = pytest.mark.integration

MESSAGES = 20_000


def _wait_until_closed(last_message_ms: int, grace_ms: int = 2000) -> None:
    closes_at = (last_message_ms // WINDOW_MS + 1) * WINDOW_MS + grace_ms
    time.sleep(max(0.0, closes_at / 1000 - time.time()) + 0.5)


@pytest.fixture(scope="module")
def landing(kafka_bootstrap, spark_remote, postgres_url, stack_root):
    """A simulator run of MESSAGES messages (2% malformed or duplicated) produced to user-events,
    with the offsets it occupies and its ground truth; the windows it spans have closed."""
    kafka = KafkaResource(bootstrap_servers=kafka_bootstrap)
    before = {p: high for p, (_, high) in kafka.watermarks(USER_EVENTS).items()}
    started_ms = int(time.time() * 1000)
    summary = run(
        SimulatorConfig(
            seed=11, clock="simulated", count=MESSAGES, malformed_rate=0.02, start_ms=started_ms - 600_000,
            out_dir=stack_root / "sim-landing",
        ),
        make_producer(kafka_bootstrap),
    )
    after = {p: high for p, (_, high) in kafka.watermarks(USER_EVENTS).items()}
    finished_ms = int(time.time() * 1000)
    _wait_until_closed(finished_ms)
    warehouse = WarehouseResource(root=str(stack_root / "warehouse-landing"))
    return {
        "kafka": kafka,
        "summary": summary,
        "truth": load_ground_truth(summary["out_dir"]),
        "ranges": [PartitionRange(p, before[p], after[p]) for p in sorted(before)],
        "first_window_ms": started_ms // WINDOW_MS * WINDOW_MS,
        "resources": {
            "kafka": kafka,
            "spark": SparkResource(remote=spark_remote),
            "warehouse": warehouse,
            "postgres": PostgresResource(url=postgres_url),
        },
        "bronze": warehouse.table_path(BRONZE_USER_EVENTS_TABLE),
        "quarantine": warehouse.table_path(BRONZE_QUARANTINE_TABLE),
    }


@pytest.fixture(scope="module")
def requests(landing):
    """Two consecutive sensor ticks; the run requests of the first."""
    cursor = window_key(landing["first_window_ms"] - WINDOW_MS)
    resources = {"kafka": landing["kafka"]}
    with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
        first = user_events_window_sensor(context)
    with dg.build_sensor_context(cursor=first.cursor, resources=resources) as context:
        second = user_events_window_sensor(context)
    return first, second, first.cursor


def _materialize(landing, partition_key: str, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [bronze_landing], partition_key=partition_key, tags=tags or {}, resources=landing["resources"]
    )
    assert result.success
    return result


@pytest.fixture(scope="module")
def landed(landing, requests):
    """Every requested window materialised once, as the daemon would launch it."""
    first, _, _ = requests
    return {r.partition_key: _materialize(landing, r.partition_key, r.tags) for r in first.run_requests}


def _rows(path: str, ranges: list[PartitionRange], columns: list[str]):
    """Rows of a Delta table (read with delta-rs) whose Kafka coordinates fall in `ranges`."""
    table = DeltaTable(path).to_pyarrow_table(columns=[*columns, "kafka_partition", "kafka_offset"])
    mask = None
    for r in ranges:
        part = pc.and_(
            pc.equal(table["kafka_partition"], r.partition),
            pc.and_(pc.greater_equal(table["kafka_offset"], r.start), pc.less(table["kafka_offset"], r.end)),
        )
        mask = part if mask is None else pc.or_(mask, part)
    return table.filter(mask)


# ----------------------------------------------------------------------------------- sensor
def test_sensor_requests_each_closed_window_once_with_its_offsets(landing, requests):
    first, second, cursor = requests
    keys = [r.partition_key for r in first.run_requests]
    assert keys and keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(r.run_key == r.partition_key and r.tags[TAG_KAFKA_TOPIC] == USER_EVENTS for r in first.run_requests)
    # the windows' offset ranges tile the offsets the simulator run occupies without a gap; the first
    # window may also hold a few earlier messages of another test that shares the broker
    covered: dict[int, list[tuple[int, int]]] = {}
    for request in first.run_requests:
        for r in ranges_from_json(request.tags[TAG_KAFKA_OFFSETS]):
            covered.setdefault(r.partition, []).append((r.start, r.end))
    for r in landing["ranges"]:
        spans = covered[r.partition]
        assert spans[0][0] <= r.start and spans[-1][1] == r.end
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert cursor == keys[-1]
    # the second tick, right after, requests nothing and says why
    assert second.run_requests == [] and second.skip_reason


# ---------------------------------------------------------------------------------- landing
def test_every_message_lands_once_in_bronze_or_quarantine(landing, landed):
    n = landing["summary"]["delivered"]
    assert n == MESSAGES == sum(r.count for r in landing["ranges"])
    bronze = _rows(landing["bronze"], landing["ranges"], ["event_id"])
    quarantine = _rows(landing["quarantine"], landing["ranges"], ["reason"])
    assert bronze.num_rows + quarantine.num_rows == n
    assert pc.count_distinct(bronze["event_id"]).as_py() == bronze.num_rows
    keys = [(p, o) for p, o in zip(bronze["kafka_partition"].to_pylist(), bronze["kafka_offset"].to_pylist())]
    keys += [(p, o) for p, o in zip(quarantine["kafka_partition"].to_pylist(), quarantine["kafka_offset"].to_pylist())]
    assert len(set(keys)) == n  # each offset exactly once


def test_each_malformed_class_is_quarantined_with_its_reason(landing, landed):
    quarantine = _rows(landing["quarantine"], landing["ranges"], ["reason", "raw_value", "kafka_key"])
    found = {
        (p, o): reason
        for p, o, reason in zip(
            quarantine["kafka_partition"].to_pylist(), quarantine["kafka_offset"].to_pylist(), quarantine["reason"].to_pylist()
        )
    }
    expected = {(m.partition, m.offset): m.expected_reason for m in landing["truth"].malformed}
    assert expected and all(k[0] is not None for k in expected)
    assert {k: found.get(k) for k in expected} == expected
    classes = {reason.split(":")[0] for reason in expected.values()}
    assert classes == {r.value for r in QuarantineReason}  # every class was exercised
    assert set(found) == set(expected)  # and nothing valid was quarantined
    assert all(raw is not None for raw, reason in zip(quarantine["raw_value"].to_pylist(), quarantine["reason"].to_pylist())
               if reason != QuarantineReason.EMPTY_PAYLOAD)


def test_materialization_metadata_and_reconciliation_check(landed):
    for result in landed.values():
        meta = result.asset_materializations_for_node("bronze_landing")[0].metadata
        assert {"kafka_offsets", "rows_landed", "rows_quarantined", "seconds", "rows_per_second"} <= set(meta)
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)


def test_rerun_and_backfill_reproduce_the_same_table(landing, landed):
    before = _rows(landing["bronze"], landing["ranges"], ["event_id"])
    q_before = _rows(landing["quarantine"], landing["ranges"], ["reason"])
    for key, result in landed.items():
        _materialize(landing, key, dict(result.dagster_run.tags))  # rerun with the sensor's tags
        _materialize(landing, key)  # backfill: no tags, offsets recomputed from the window
    after = _rows(landing["bronze"], landing["ranges"], ["event_id"])
    assert sorted(after["event_id"].to_pylist()) == sorted(before["event_id"].to_pylist())
    assert _rows(landing["quarantine"], landing["ranges"], ["reason"]).num_rows == q_before.num_rows
    whole = DeltaTable(landing["bronze"]).to_pyarrow_table(columns=["event_id"])
    assert pc.count_distinct(whole["event_id"]).as_py() == whole.num_rows


def test_killed_write_then_rerun_loses_and_duplicates_nothing(landing, landed, stack_cfg):
    """SIGKILL a landing (its own Spark JVM) after it has written data files but before it commits;
    the rerun leaves the window exactly as before: Delta commits are atomic, orphans are ignored."""
    key = next(iter(landed))
    tags = dict(landed[key].dagster_run.tags)
    before = _rows(landing["bronze"], landing["ranges"], ["event_id"]).num_rows
    window_dir = Path(landing["bronze"])
    existing = set(window_dir.rglob("*.parquet"))
    script = (
        "from datetime import datetime, timedelta, timezone\n"
        "from assets.landing import land_windows\n"
        "from resources.kafka import ranges_from_json\n"
        "from resources.spark import SparkResource\n"
        f"s = SparkResource(master='local[2]', jvm_lib_dir={str(stack_cfg.jvm_lib_dir)!r}, driver_memory='1g').get_session()\n"
        f"ws = datetime.fromtimestamp({window_start_ms(key)} / 1000, timezone.utc)\n"
        f"land_windows(s, {landing['kafka'].bootstrap_servers!r}, 'user-events', ws, ws + timedelta(minutes=1), ranges_from_json({tags[TAG_KAFKA_OFFSETS]!r}),"
        f" {landing['bronze']!r}, {landing['quarantine']!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (set(window_dir.rglob("*.parquet")) - existing):
            assert proc.poll() is None, "the landing finished before it could be killed"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    orphans = set(window_dir.rglob("*.parquet")) - existing
    assert orphans, "no data file appeared: the kill did not interrupt a write"
    committed = {uri.removeprefix("file://") for uri in DeltaTable(landing["bronze"]).file_uris()}
    assert not {str(o) for o in orphans} & committed  # the interrupted write never became visible
    assert _rows(landing["bronze"], landing["ranges"], ["event_id"]).num_rows == before

    _materialize(landing, key, tags)
    after = _rows(landing["bronze"], landing["ranges"], ["event_id"])
    assert after.num_rows == before and pc.count_distinct(after["event_id"]).as_py() == before


def test_reconciliation_report_balances_every_window(landing, landed):
    first_ms = landing["first_window_ms"]
    balances = reconcile(landing["kafka"], USER_EVENTS, landing["bronze"], landing["quarantine"], first_ms,
                         max(window_start_ms(k) for k in landed) + WINDOW_MS)
    assert balances and all(b.status == "ok" for b in balances)
    assert sum(b.kafka_messages for b in balances) >= MESSAGES  # earlier tests may share the first minute


def test_delta_rs_and_spark_read_the_same_table(landing, landed, spark):
    spark_count = spark.read.format("delta").load(landing["bronze"]).count()
    assert DeltaTable(landing["bronze"]).to_pyarrow_table(columns=["event_id"]).num_rows == spark_count
    assert (Path(landing["bronze"]) / "_delta_log").is_dir()


def test_reconciliation_check_reads_back_and_fails_on_a_lost_write(landing, landed, spark, stack_root):
    """The blocking check balances what the tables hold, not what was written: rows deleted by a later
    table version, or a data file deleted under the table, fail it."""
    key = next(iter(landed))
    ranges = ranges_from_json(landed[key].dagster_run.tags[TAG_KAFKA_OFFSETS])
    window = datetime.fromtimestamp(window_start_ms(key) / 1000, UTC)
    window_end = window + timedelta(minutes=1)
    in_window = window_range_predicate(window, window_end)
    # a copy of both tables, so the tampering leaves the module's tables as they were
    bronze, quarantine = (str(stack_root / "tamper" / name) for name in ("bronze", "quarantine"))
    for source, target in ((landing["bronze"], bronze), (landing["quarantine"], quarantine)):
        spark.read.format("delta").load(source).where(in_window).write.format("delta").save(target)
    assert balance_windows(bronze, quarantine, window, window_end, ranges).passed

    spark.sql(f"DELETE FROM delta.`{bronze}` WHERE {in_window} AND kafka_offset % 97 = 0")
    truncated = balance_windows(bronze, quarantine, window, window_end, ranges)
    assert not truncated.passed and "expected offsets" in truncated.metadata["problems"]

    Path(DeltaTable(bronze).file_uris()[0].removeprefix("file://")).unlink()
    lost = balance_windows(bronze, quarantine, window, window_end, ranges)
    assert not lost.passed and "error" in lost.metadata
