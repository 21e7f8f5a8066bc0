"""`lakehouse`: bring the local stack up and down, report its health, run the test suite.

    lakehouse setup    install what is missing (JVM jars, PostgreSQL, the Flink virtualenv)
    lakehouse up       setup, start every service, wait until healthy, print the URLs
    lakehouse down     stop every service `up` started (data is kept)
    lakehouse status   one line per service: running/stopped, healthy or not, endpoint
    lakehouse reset    down, then delete the data directory (asks, unless --yes)
    lakehouse reconcile  per closed window: Kafka messages vs bronze + quarantine rows
    lakehouse score-alerts  precision and recall of every CEP rule against the simulator's ground truth
    lakehouse psql     psql on the analytics database
    lakehouse bootstrap  topics, databases, migrations and dagster.yaml on the configured endpoints
    lakehouse serve NAME run one service in the foreground (container entry point)
    lakehouse test     setup, then the unit and the integration tests
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jvm
from settings import PROJECT_ROOT, ConfigError, Settings, current
from stack import watchdog
from stack.procs import StartError, Supervisor, apt_install
from stack.services import FlinkCEP, Kafka, Postgres, Service, all_services
from stack.services.dagster import write_dagster_yaml


def _supervisor(cfg: Settings) -> Supervisor:
    return Supervisor(cfg.run_dir, cfg.log_dir, cfg.host)


def setup(cfg: Settings) -> None:
    started = time.monotonic()
    jvm.java_home()
    jvm.resolve_jars(cfg.jvm_lib_dir, cfg.log_dir)
    postgres = Postgres(cfg)
    if postgres.managed:
        postgres.install()
    if cfg.flink_cep_enabled:
        FlinkCEP(cfg).install()
    print(f"setup: ok ({time.monotonic() - started:.1f}s)", flush=True)


def up(cfg: Settings) -> None:
    started = time.monotonic()
    setup(cfg)
    cfg.ensure_deployment()
    sup = _supervisor(cfg)
    for service in all_services(cfg):
        t0 = time.monotonic()
        if service.managed:
            service.prepare()
            state = sup.start(service.spec())
        else:
            service.check_external()
            state = "external"
        service.bootstrap()
        print(f"  {service.name:<18} {state:<9} {time.monotonic() - t0:5.1f}s  {service.endpoint()}", flush=True)
    sup.start(watchdog.spec(cfg))
    print(f"up: all services healthy in {time.monotonic() - started:.1f}s; the watchdog restarts any that crashes")
    print(f"  Dashboard      http://{cfg.host}:{cfg.dashboard_port}")
    print(f"  Dagster UI     http://{cfg.host}:{cfg.dagster_port}")
    print(f"  MLflow UI      {cfg.mlflow_tracking_uri}")
    if cfg.flink_cep_enabled:
        print(f"  Flink UI       http://{cfg.host}:{cfg.flink_rest_port}")
    if cfg.external_spark_remote is None and cfg.spark_master is None:
        print(f"  Spark UI       {cfg.spark_ui_url}")
    if cfg.spark_cluster == "standalone":
        print(f"  Spark master   {cfg.spark_master_ui_url}")
    print(f"  logs           {cfg.log_dir}")
    if cfg.simulator_enabled and cfg.simulator_history_days > 0:
        _follow_first_hour(cfg)


FIRST_HOUR_WAIT_S = 45 * 60


def _follow_first_hour(cfg: Settings) -> None:
    """On a deployment the simulator fills with history: progress until both models have a champion."""
    from stack import first_hour

    if first_hour.read_progress(cfg).trained:
        return
    print(f"up: the simulator produces {cfg.simulator_history_days} days of history; following it until the "
          "models are trained (Ctrl-C stops following, never the stack)", flush=True)
    try:
        progress = first_hour.follow(cfg, FIRST_HOUR_WAIT_S)
    except KeyboardInterrupt:
        print("\nup: the stack keeps running; `lakehouse status` shows how far the history got")
        return
    if not progress.trained:
        print(f"up: no champion after {FIRST_HOUR_WAIT_S // 60} min; the stack keeps going (`lakehouse status`)")


def down(cfg: Settings) -> None:
    sup = _supervisor(cfg)
    sup.stop(watchdog.spec(cfg))  # first, or it would restart what is being stopped
    services = [s for s in reversed(all_services(cfg, stopping=True)) if s.managed]
    # the Kafka nodes stop together: the last node stopped alone would wait for a quorum that has left
    nodes = [s for s in services if isinstance(s, Kafka)]
    for service in services:
        if service in nodes[1:]:
            continue
        group = nodes if service in nodes else [service]
        for member, state in zip(group, sup.stop_together([s.spec() for s in group]), strict=True):
            print(f"  {member.name:<18} {state}", flush=True)


def status(cfg: Settings) -> int:
    sup = _supervisor(cfg)
    records = watchdog.read_records(cfg)
    unhealthy = 0
    for service in all_services(cfg):
        state = _state(sup, service)
        unhealthy += state != "healthy" and state != "external, healthy"
        record = records.get(service.name)
        restarts = ""
        if record and record.restarts:
            restarts = f"  restarted {record.restarts}x, last {time.strftime('%H:%M:%S', time.localtime(record.last_restart))}"
            if record.gave_up:
                restarts += f"; the watchdog gave up ({record.last_error or 'crashed too often'})"
        print(f"{service.name:<18} {state:<22} {service.endpoint()}{restarts}")
    print(f"{watchdog.NAME:<18} {'running' if sup.pid(watchdog.NAME) else 'stopped':<22} restarts crashed services")
    if not unhealthy:
        from stack import first_hour

        print(f"{'pipeline':<18} {first_hour.read_progress(cfg).line()}")
    return 1 if unhealthy else 0


def _state(sup: Supervisor, service: Service) -> str:
    if not service.managed:
        try:
            service.check_external()
            return "external, healthy"
        except ConfigError:
            return "external, unreachable"
    pid = sup.pid(service.name)
    if pid is None:
        return "stopped"
    return "healthy" if service.healthy() else f"running (pid {pid}), unhealthy"


def reset(cfg: Settings, yes: bool) -> None:
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError("reset deletes all data: pass --yes to confirm when not on a terminal")
        answer = input(f"Stop everything and delete {cfg.data_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("reset: cancelled")
            return
    down(cfg)
    shutil.rmtree(cfg.data_dir, ignore_errors=True)
    print(f"reset: deleted {cfg.data_dir}")


CHROMIUM = Path("/usr/bin/chromium")
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
DOCKER_COMPOSE_HINT = "sudo apt-get install docker-compose (or run `lakehouse test` as root, which installs it)"
# Debian packages the tests need, each named like its binary: chromium for the dashboard's browser tests
# (Playwright drives it; its own browser download cannot work here), docker-compose (v1) to validate
# docker/docker-compose.yml without a Docker engine (the machine's `docker` client has no compose plugin)
TEST_TOOLS = ((CHROMIUM, "the dashboard's browser tests"), (DOCKER_COMPOSE, "the compose file's test"))


def ensure_test_tools() -> None:
    for tool, purpose in TEST_TOOLS:
        if tool.exists():
            continue
        if os.geteuid() != 0:
            raise ConfigError(f"{tool} is missing: install it (sudo apt-get install {tool.name}) for {purpose}")
        print(f"installing {tool.name} from Debian packages (apt-get) for {purpose} ...", flush=True)
        apt_install([tool.name], f"install {tool.name} (apt-get install {tool.name}) for {purpose}")


def test(cfg: Settings, pytest_args: list[str]) -> int:
    """Unit tests, then integration tests (which start their own services on free ports)."""
    setup(cfg)
    ensure_test_tools()
    for marker in ("unit", "integration"):
        print(f"\n=== pytest -m {marker}", flush=True)
        # the slowest tests are listed: the whole run must stay within CI's 40-minute budget
        code = subprocess.call([sys.executable, "-m", "pytest", "-m", marker, "--durations=12", *pytest_args],
                               cwd=PROJECT_ROOT)
        if code == 5:
            print(f"no {marker} tests were collected: that is a failure", file=sys.stderr)
            return 5
        if code != 0:
            return code
    return 0


def bootstrap(cfg: Settings) -> None:
    """What `up` creates once services run, against endpoints someone else runs (containers, clusters)."""
    cfg.ensure_deployment()
    write_dagster_yaml(cfg.dagster_home)
    for service in (Postgres(cfg), Kafka(cfg, cfg.kafka_brokers)):  # the last node makes the topics
        if not service.managed:
            service.check_external()
        service.bootstrap()
        print(f"  {service.name:<18} bootstrapped  {service.endpoint()}", flush=True)


def serve(cfg: Settings, name: str) -> None:
    """Replace this process with one service (its prepare step first): PID 1 of a container."""
    service = next((s for s in all_services(cfg) if s.name == name), None)
    if service is None:
        raise ConfigError(f"unknown service {name!r}: one of {', '.join(s.name for s in all_services(cfg))}")
    service.prepare()
    spec = service.spec()
    os.execvpe(spec.argv[0], list(spec.argv), {**os.environ, **spec.env})


def reconcile(cfg: Settings, minutes: int) -> int:
    from analytics_defs.constants import BRONZE_QUARANTINE_TABLE, BRONZE_USER_EVENTS_TABLE
    from analytics_defs.partitions import WINDOW_CLOSE_GRACE_MS
    from assets.reconciliation import format_report
    from assets.reconciliation import reconcile as balance
    from contract.topics import USER_EVENTS
    from resources.kafka import KafkaResource
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(root=cfg.warehouse)
    now_ms = int(time.time() * 1000) - WINDOW_CLOSE_GRACE_MS
    balances = balance(
        KafkaResource.from_settings(cfg),
        USER_EVENTS,
        warehouse.table_path(BRONZE_USER_EVENTS_TABLE),
        warehouse.table_path(BRONZE_QUARANTINE_TABLE),
        now_ms - minutes * 60_000,
        now_ms,
    )
    print(format_report(balances))
    return 1 if any(b.status == "MISMATCH" for b in balances) else 0


def psql(cfg: Settings, psql_args: list[str]) -> None:
    """Replace this process with psql on the analytics database (the password travels in the
    environment, never on the command line)."""
    from urllib.parse import urlsplit

    from settings import redact

    parts = urlsplit(cfg.postgres_url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    if not shutil.which("psql"):
        raise ConfigError("psql is not installed (apt-get install postgresql-client)")
    os.execvpe("psql", ["psql", redact(cfg.postgres_url).replace(":***@", "@"), *psql_args], env)


def score_alerts(cfg: Settings, min_precision: float, min_recall: float) -> int:
    """Every CEP alert stored so far, scored against every truth file the simulator wrote; then the
    behavior_anomaly alerts per scored day against the drifting users."""
    import psycopg

    from alerts.scoring import (
        RULE_BEHAVIOR_ANOMALY,
        format_scores,
        read_truth,
        score,
        score_behavior_anomaly,
        stored_cep_alerts,
        stored_ml_alerts,
        total,
    )

    truth = read_truth(cfg.data_dir / "simulator")
    with psycopg.connect(cfg.postgres_url) as conn:
        alerts, later = stored_cep_alerts(conn, truth.covered_until_ms)
        ml_alerts, scored_days = stored_ml_alerts(conn)
    scores, problems = score(truth.labels, alerts)
    print(f"{truth.runs} simulator runs, {len(truth.labels)} labels; {len(alerts)} alerts scored "
          f"({later} newer than the truth files, left for the next call)")
    by_day = score_behavior_anomaly(truth.labels, ml_alerts, scored_days)
    if by_day:
        scores[RULE_BEHAVIOR_ANOMALY] = total(by_day.values())
    print(format_scores(scores))
    if by_day:
        print(f"\n{RULE_BEHAVIOR_ANOMALY} per scored day (true: the user's drift had started; planted: drifting "
              "users whose drift had fully ramped by the day's end)")
        print(format_scores({day.isoformat(): s for day, s in by_day.items()}, first="day"))
    for problem in problems[:20]:
        print(f"  {problem}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")
    below = [rule for rule, s in scores.items()
             if (s.precision is not None and s.precision < min_precision) or (s.recall is not None and s.recall < min_recall)]
    if below:
        print(f"below precision {min_precision} / recall {min_recall}: {', '.join(below)}")
    return 1 if below else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "up", "down", "status"):
        sub.add_parser(name)
    sub.add_parser("reset").add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sub.add_parser("bootstrap")
    sub.add_parser("watchdog", help="(started by up) restart crashed services")
    sub.add_parser("serve").add_argument("name", help="service name, as `status` prints it")
    sub.add_parser("reconcile").add_argument("--minutes", type=int, default=60, help="how far back (default 60)")
    scorer = sub.add_parser("score-alerts", help="precision and recall of every CEP rule against the simulator's truth")
    scorer.add_argument("--min-precision", type=float, default=0.0, help="exit 1 if a rule's precision is below")
    scorer.add_argument("--min-recall", type=float, default=0.0, help="exit 1 if a rule's recall is below")
    sub.add_parser("psql", help="psql on the analytics database").add_argument("psql_args", nargs=argparse.REMAINDER)
    sub.add_parser("test").add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest")
    args = parser.parse_args(argv)
    try:
        cfg = current()
        if args.command == "setup":
            setup(cfg)
        elif args.command == "up":
            up(cfg)
        elif args.command == "down":
            down(cfg)
        elif args.command == "status":
            return status(cfg)
        elif args.command == "reset":
            reset(cfg, args.yes)
        elif args.command == "watchdog":
            return watchdog.main(cfg)
        elif args.command == "bootstrap":
            bootstrap(cfg)
        elif args.command == "serve":
            serve(cfg, args.name)
        elif args.command == "reconcile":
            return reconcile(cfg, args.minutes)
        elif args.command == "score-alerts":
            return score_alerts(cfg, args.min_precision, args.min_recall)
        elif args.command == "psql":
            psql(cfg, args.psql_args)
        elif args.command == "test":
            return test(cfg, args.pytest_args)
    except (ConfigError, StartError) as exc:
        print(f"lakehouse {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
