"""Landing on a Spark standalone cluster (SPARK_CLUSTER=standalone): a real master and worker from the pyspark
wheel, the Spark Connect server's application on them. The same windows land through the cluster and through
the local[*] server; the Spark REST API shows that the cluster's executors, not its driver, ran the tasks
(read Kafka, wrote Delta), and both warehouses hold exactly the same rows, reconciled against Kafka."""

import time

import pyarrow.compute as pc
import pytest
import requests
from deltalake import DeltaTable

from analytics_defs.constants import BRONZE_QUARANTINE_TABLE, BRONZE_USER_EVENTS_TABLE
from analytics_defs.partitions import WINDOW_MS, window_start_ms
from assets.reconciliation import reconcile
from contract.topics import USER_EVENTS
from resources.kafka import KafkaResource, PartitionRange
from resources.spark import SparkResource
from simulator import SimulatorConfig, make_producer, run
from stack.services.spark_cluster import master_state, worker_alive
from stack.services.spark_connect import cluster_executors
from tests.lakehouse_flow import Lakehouse, wait_until_closed

pytestmark = pytest.mark.integration

MESSAGES = 5_000


@pytest.fixture(scope="module")
def produced(kafka_bootstrap, stack_root):
    """A simulator run of MESSAGES messages (2% malformed or duplicated) on user-events; its windows have closed."""
    kafka = KafkaResource(bootstrap_servers=kafka_bootstrap)
    before = {p: high for p, (_, high) in kafka.watermarks(USER_EVENTS).items()}
    started_ms = int(time.time() * 1000)
    summary = run(SimulatorConfig(seed=23, clock="simulated", count=MESSAGES, malformed_rate=0.02,
                                  start_ms=started_ms - 600_000, out_dir=stack_root / "sim-cluster"),
                  make_producer(kafka_bootstrap))
    after = {p: high for p, (_, high) in kafka.watermarks(USER_EVENTS).items()}
    wait_until_closed()
    assert summary["delivered"] == MESSAGES
    return {"since_ms": started_ms, "ranges": [PartitionRange(p, before[p], after[p]) for p in sorted(before)]}


def _land(remote: str, kafka_bootstrap: str, postgres_url: str, root, since_ms: int) -> tuple[Lakehouse, list[str]]:
    lakehouse = Lakehouse(kafka_bootstrap, remote, postgres_url, root)
    keys = lakehouse.land_new_windows(since_ms)
    assert keys
    return lakehouse, keys


@pytest.fixture(scope="module")
def on_cluster(spark_cluster, kafka_bootstrap, postgres_url, stack_root, produced):
    """Every closed window landed by bronze_landing runs attached to the cluster's Connect server."""
    landed = _land(spark_cluster.spark_remote, kafka_bootstrap, postgres_url, stack_root / "warehouse-cluster",
                   produced["since_ms"])
    yield landed
    # before the server stops: pyspark's exit hook would retry against a dead server for minutes
    SparkResource(remote=spark_cluster.spark_remote).get_session().stop()


@pytest.fixture(scope="module")
def on_local(spark_remote, spark, kafka_bootstrap, postgres_url, stack_root, produced):
    """The same windows landed through the local[*] Connect server (with the session of `spark`, which the
    session's teardown stops before that server stops)."""
    return _land(spark_remote, kafka_bootstrap, postgres_url, stack_root / "warehouse-local", produced["since_ms"])


def _table(path: str, columns: list[str]):
    return DeltaTable(path).to_pyarrow_table(columns=columns).sort_by([(c, "ascending") for c in columns])


def test_the_cluster_is_one_alive_worker_with_the_connect_application_on_it(spark_cluster, on_cluster):
    state = master_state(spark_cluster)
    assert state["status"] == "ALIVE" and state["aliveworkers"] == 1
    assert worker_alive(state, spark_cluster.host, spark_cluster.spark_worker_ui_port)
    [app] = state["activeapps"]
    assert app["name"] == "lakehouse-spark-connect" and app["state"] == "RUNNING"
    assert app["cores"] == spark_cluster.spark_worker_cores  # the worker's cores went to its executor


def test_executors_not_the_driver_ran_the_landing_tasks(spark_cluster, on_cluster):
    ui = spark_cluster.spark_ui_url
    [app] = requests.get(f"{ui}/api/v1/applications", timeout=5).json()
    everyone = {e["id"]: e for e in requests.get(f"{ui}/api/v1/applications/{app['id']}/executors", timeout=5).json()}
    executors = cluster_executors(ui)
    assert executors and all(e["id"] != "driver" for e in executors)
    assert sum(e["totalTasks"] for e in executors) > 0 and everyone["driver"]["totalTasks"] == 0
    assert all(e["hostPort"].startswith(f"{spark_cluster.host}:") for e in executors)
    # the Kafka reads were among those tasks: a stage of the landing read the messages through an executor
    stages = requests.get(f"{ui}/api/v1/applications/{app['id']}/stages", timeout=5).json()
    assert sum(s["inputRecords"] for s in stages) >= MESSAGES


def test_windows_reconcile_on_the_cluster_as_on_local(on_cluster, on_local, produced):
    (cluster, cluster_keys), (local, local_keys) = on_cluster, on_local
    assert cluster_keys == local_keys
    start_ms = min(window_start_ms(k) for k in cluster_keys)
    end_ms = max(window_start_ms(k) for k in cluster_keys) + WINDOW_MS
    for lakehouse in (cluster, local):
        balances = reconcile(lakehouse.kafka, USER_EVENTS, lakehouse.path(BRONZE_USER_EVENTS_TABLE),
                             lakehouse.path(BRONZE_QUARANTINE_TABLE), start_ms, end_ms)
        assert balances and all(b.status == "ok" for b in balances), balances
        assert sum(b.kafka_messages for b in balances) >= MESSAGES
    bronze = ["kafka_partition", "kafka_offset", "event_id", "window_start"]
    quarantine = ["kafka_partition", "kafka_offset", "reason"]
    assert _table(cluster.path(BRONZE_USER_EVENTS_TABLE), bronze).equals(_table(local.path(BRONZE_USER_EVENTS_TABLE), bronze))
    assert _table(cluster.path(BRONZE_QUARANTINE_TABLE), quarantine).equals(
        _table(local.path(BRONZE_QUARANTINE_TABLE), quarantine))
    landed = _table(cluster.path(BRONZE_USER_EVENTS_TABLE), ["event_id"])
    assert landed.num_rows > 0 and pc.count_distinct(landed["event_id"]).as_py() == landed.num_rows
