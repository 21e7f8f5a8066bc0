"""Fault drill: the whole stack (`lakehouse up`, simulator at its rate, scenarios planted throughout), then
`kill -9` of one service after another during the flow, with no human action: the watchdog restarts it,
landing runs that hung or failed are stopped and retried, windows that failed for good are requested
again. Each kill comes 40 s into a minute of broker time; per fault it prints how long until the service
was healthy again, until the window the fault hit (it closes 20 s later) was landed, and the worst
freshness of the windows landed by then; at the end, whether every
window reconciles with Kafka, whether bronze holds any offset twice, and the CEP scores against the
simulator's truth. Also restarts the simulator alone, and the whole stack through down/up (issue:
restarts must not flood alerts).

    .venv/bin/python -m bench.faults [--rate 200] [--scenario-rate 20] [--brokers 3]

With --brokers 3 the stack runs a three-broker Kafka cluster and the drill is one broker's kill -9 (the
watchdog restarts it): landing and the CEP job go on with the two that survive.

tests/integration/test_faults.py runs the same drill and asserts on its outcome.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyarrow.compute as pc
from deltalake import DeltaTable

from analytics_defs.constants import BRONZE_USER_EVENTS_TABLE
from bench.common import append_result
from settings import Settings
from stack.procs import Supervisor, wait_until
from stack.services import Simulator
from tests.lakehouse_cli import cli_env, lakehouse

FAULTS = ("spark-connect", "kafka", "postgres", "dagster-daemon", "flink-cep", "alert-loader")
BROKER_FAULT = ("kafka",)  # on a three-broker cluster: one broker (the first of every client's bootstrap list)
FRESHNESS_TARGET_S = 90.0
KILL_AT_SECOND = 40  # of a minute of wall (broker) time


@dataclass
class FaultOutcome:
    service: str
    healthy_after_s: float | None
    landed_after_s: float | None  # the window the fault hit (it closed after the fault), landed
    worst_freshness_s: float | None


@dataclass
class DrillResult:
    faults: list[FaultOutcome] = field(default_factory=list)
    reconcile_exit: int | None = None
    reconcile_report: str = ""
    bronze_rows: int = 0
    bronze_distinct_offsets: int = 0
    score_exit: int | None = None
    score_report: str = ""


def _healthy(env: dict, name: str) -> bool:
    status = lakehouse(env, "status", timeout=120).stdout
    return any(line.startswith(name) and " healthy " in line for line in status.splitlines())


def _landed_since(cfg: Settings, since: float) -> list[tuple[float, float]]:
    """(window end, freshness) of the windows that closed after `since` and have landed."""
    try:
        with psycopg.connect(cfg.postgres_url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM window_start) + 60, freshness_seconds FROM streaming_performance "
                "WHERE pipeline = 'bronze_user_events' AND window_start >= to_timestamp(%s)", (since,)).fetchall()
    except psycopg.Error:
        return []
    return [(float(end), float(fresh)) for end, fresh in rows]


def kill_service(cfg: Settings, name: str) -> None:
    """kill -9 of the service's whole process group, as a crash would leave it."""
    pid = int((cfg.run_dir / f"{name}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)


def fault(env: dict, cfg: Settings, name: str, recover_timeout_s: float = 300) -> FaultOutcome:
    at = time.time()
    kill_service(cfg, name)
    healthy = wait_until(lambda: _healthy(env, name), recover_timeout_s, 2.0)
    healthy_after = time.time() - at if healthy else None
    hit = at // 60 * 60  # the window the fault hit: it closed after the fault, so it lands only after recovery
    landed = wait_until(lambda: bool(_landed_since(cfg, hit)), recover_timeout_s, 3.0)
    landed_after = time.time() - at if landed else None
    windows = _landed_since(cfg, hit)  # the window the fault hit, and those after it landed so far
    worst = max((f for _, f in windows), default=None)
    print(f"  {name:<15} healthy after {healthy_after if healthy_after is None else round(healthy_after)} s, "
          f"its window landed after {landed_after if landed_after is None else round(landed_after)} s, "
          f"worst freshness {worst if worst is None else round(worst)} s", flush=True)
    return FaultOutcome(name, healthy_after, landed_after, worst)


def restart_simulator(cfg: Settings) -> None:
    supervisor, simulator = Supervisor(cfg.run_dir, cfg.log_dir, cfg.host), Simulator(cfg)
    supervisor.stop(simulator.spec())
    supervisor.start(simulator.spec())


def drill(env: dict, phase_s: float = 60, faults: tuple[str, ...] = FAULTS, restarts: bool = True) -> DrillResult:
    """Run the drill on a stack started with `env`; returns what the test asserts on. `faults` are the
    services killed in turn; `restarts` adds the simulator's two restarts and the stack's down/up."""
    cfg = Settings.from_env(env)
    result = DrillResult()
    _up(env)
    time.sleep(phase_s)
    if restarts:
        restart_simulator(cfg)  # the simulator alone, twice, as a user would
        time.sleep(phase_s / 2)
        restart_simulator(cfg)
    for name in faults:
        _sleep_until_second(KILL_AT_SECOND)  # late in a window: its close waits for the recovery
        result.faults.append(fault(env, cfg, name))
    if restarts:
        assert lakehouse(env, "down").returncode == 0  # and the whole stack, through down and up
        _up(env)
    time.sleep(phase_s)
    Supervisor(cfg.run_dir, cfg.log_dir, cfg.host).stop(Simulator(cfg).spec())  # its last truth file
    stopped = time.time()
    wait_until(lambda: bool(_landed_since(cfg, (stopped // 60) * 60)), 240, 5.0)  # the last windows land
    time.sleep(20)  # and the last alerts reach PostgreSQL
    minutes = int((time.time() - _started(cfg)) / 60) + 2
    reconciled = lakehouse(env, "reconcile", "--minutes", str(minutes), timeout=300)
    result.reconcile_exit, result.reconcile_report = reconciled.returncode, reconciled.stdout
    bronze = DeltaTable(f"{cfg.warehouse}/{BRONZE_USER_EVENTS_TABLE}").to_pyarrow_table(
        columns=["kafka_partition", "kafka_offset"])
    keys = pc.add(pc.multiply(pc.cast(bronze["kafka_partition"], "int64"), 10**12), bronze["kafka_offset"])
    result.bronze_rows, result.bronze_distinct_offsets = bronze.num_rows, pc.count_distinct(keys).as_py()
    scored = lakehouse(env, "score-alerts", "--min-precision", "0.99", "--min-recall", "1.0", timeout=300)
    result.score_exit, result.score_report = scored.returncode, scored.stdout
    return result


def _up(env: dict) -> None:
    up = lakehouse(env, "up")
    if up.returncode != 0:
        raise RuntimeError(up.stdout + up.stderr)


def _sleep_until_second(second: int) -> None:
    time.sleep((second - time.time() % 60) % 60)


def _started(cfg: Settings) -> float:
    return cfg.deployment_file.stat().st_mtime


def pending_windows(report: str) -> int:
    match = re.search(r"not landed yet: \d+ messages in (\d+) windows", report)
    return int(match.group(1)) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--scenario-rate", type=float, default=20)
    parser.add_argument("--brokers", type=int, default=1,
                        help="3: a three-broker Kafka cluster, and the drill kills one broker only")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-faults-"))
    data_dir.chmod(0o755)
    env = cli_env(data_dir, SIMULATOR_ENABLED="1", SIMULATOR_RATE=str(args.rate),
                  SIMULATOR_SCENARIO_RATE=str(args.scenario_rate), KAFKA_BROKERS=str(args.brokers))
    try:
        result = drill(env) if args.brokers == 1 else drill(env, faults=BROKER_FAULT, restarts=False)
    finally:
        lakehouse(env, "down")
    lines = [(f"stack at {args.rate} events/s, {args.scenario_rate} scenarios/min, {args.brokers} Kafka broker(s); "
              "kill -9 of each service in turn:")]
    for f in result.faults:
        lines.append(f"  {f.service:<15} healthy again after {f.healthy_after_s:.0f} s; the window it hit "
                     f"landed after {f.landed_after_s:.0f} s; worst freshness {f.worst_freshness_s:.0f} s "
                     f"(target {FRESHNESS_TARGET_S:.0f} s)" if f.healthy_after_s and f.landed_after_s
                     and f.worst_freshness_s else f"  {f.service:<15} {f}")
    lines += [f"reconcile (exit {result.reconcile_exit}): {result.reconcile_report.splitlines()[-2:]}",
              f"bronze: {result.bronze_rows:,} rows, {result.bronze_distinct_offsets:,} distinct Kafka offsets",
              f"score-alerts (exit {result.score_exit}):", *result.score_report.splitlines()[:7]]
    print("\n".join(lines))
    append_result("Fault drill (bench/faults.py)",
                  f"-m bench.faults --rate {args.rate} --scenario-rate {args.scenario_rate} --brokers {args.brokers}",
                  lines)


if __name__ == "__main__":
    main()
