"""A three-broker Kafka cluster survives one broker's crash: the whole stack on KAFKA_BROKERS=3 (topics with
three replicas, min.insync.replicas=2, producers at acks=all), simulator and scenarios flowing, the CEP job
and landing active; `kill -9` of one broker (the first of every client's bootstrap list), the watchdog
restarts it. Landing goes on with the two that survive (the window the crash hit lands within 3 minutes),
nothing is lost (every window reconciles with Kafka, no offset twice in bronze) and the CEP alerts of the
scenarios planted meanwhile arrive (every rule precision >= 0.99, recall 1.0). bench/faults.py --brokers 3
runs the same drill and prints its figures."""

import shutil
import tempfile
from pathlib import Path

import pytest

from bench.faults import BROKER_FAULT, drill, pending_windows
from tests.lakehouse_cli import cli_env, lakehouse

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_one_broker_of_three_dies_and_nothing_is_lost():
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-brokers-"))
    data_dir.chmod(0o755)
    env = cli_env(data_dir, KAFKA_BROKERS="3", SIMULATOR_ENABLED="1", SIMULATOR_SCENARIO_RATE="20")
    try:
        result = drill(env, phase_s=45, faults=BROKER_FAULT, restarts=False)
        status = lakehouse(env, "status", timeout=120).stdout
    finally:
        lakehouse(env, "down")
        shutil.rmtree(data_dir, ignore_errors=True)
    assert all(f"{name} " in status for name in ("kafka", "kafka-2", "kafka-3")), status
    [broker] = result.faults
    assert broker.healthy_after_s is not None, "the broker was not restarted"
    assert broker.landed_after_s is not None and broker.landed_after_s <= 180, broker
    assert result.reconcile_exit == 0 and "MISMATCH" not in result.reconcile_report, result.reconcile_report
    assert pending_windows(result.reconcile_report) <= 1, result.reconcile_report
    assert result.bronze_rows > 0 and result.bronze_distinct_offsets == result.bronze_rows
    assert result.score_exit == 0, result.score_report
    table = [line.split() for line in result.score_report.splitlines()[2:7]]
    assert sum(int(row[1]) for row in table) >= 5  # alerts were raised and scored
