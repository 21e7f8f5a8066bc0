"""`python -m simulator`: produce simulated user activity to Kafka and write its ground truth.

Examples::

    python -m simulator --rate 200                                   # real time until Ctrl-C
    python -m simulator --clock simulated --count 1000000 --seed 7   # as fast as possible (benchmark)

Ctrl-C or SIGTERM stops cleanly: what was produced is flushed and the ground truth and summary are
written. A wrong option or an unreachable broker exits with status 2 and says what to set.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

from contract.detection import DetectionThresholds
from contract.topics import USER_EVENTS
from contract.user_events import DEFAULT_MAX_PAYLOAD_BYTES
from settings import current
from simulator.config import CLOCK_REALTIME, CLOCK_SIMULATED, SimulatorConfig, SimulatorConfigError
from simulator.history import produce_history
from simulator.population_store import PopulationStore
from simulator.produce import check_topic, ensure_reachable, make_producer, run

log = logging.getLogger("simulator")
# History is produced at most this fast: a broker minute then holds ~600k messages, a window a landing run
# on the default 2 GB Spark driver takes in about 20 s (bench/RESULTS.md, the first-hour entry).
HISTORY_PACE = 10_000.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimulatorConfig.__dataclass_fields__
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n")[0])
    p.add_argument(
        "--bootstrap-servers",
        default=current().kafka_bootstrap,
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or the stack's own broker)",
    )
    p.add_argument("--topic", default=USER_EVENTS, help="topic to produce to (default: %(default)s)")
    p.add_argument(
        "--rate",
        type=float,
        default=defaults["rate"].default,
        help="events per second (default: %(default)s)",
    )
    volume = p.add_mutually_exclusive_group()
    volume.add_argument("--duration-s", type=float, help="stop after this many (simulated) seconds")
    volume.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument(
        "--seed", type=int, help="seed for a repeatable run (default: random, recorded in the summary)"
    )
    p.add_argument(
        "--malformed-rate",
        type=float,
        default=defaults["malformed_rate"].default,
        help="share of malformed or duplicate messages (default: %(default)s)",
    )
    p.add_argument(
        "--no-scenarios", action="store_true", help="no injected attacks, controls or drifting users"
    )
    p.add_argument(
        "--scenario-rate",
        type=float,
        default=defaults["scenario_rate"].default,
        help="scenarios started per minute (default: %(default)s)",
    )
    p.add_argument(
        "--users", type=int, default=defaults["users"].default, help="population size (default: %(default)s)"
    )
    p.add_argument(
        "--clock",
        choices=(CLOCK_REALTIME, CLOCK_SIMULATED),
        default=CLOCK_REALTIME,
        help="realtime: paced, occurred_at = now; simulated: as fast as possible (default: %(default)s)",
    )
    p.add_argument("--start-ms", type=int, help="simulated clock start, epoch ms (default: ends about now)")
    p.add_argument(
        "--out-dir",
        type=Path,
        help="ground-truth directory (default: $LAKEHOUSE_DATA_DIR/simulator/<run id>)",
    )
    p.add_argument(
        "--identity-space",
        type=int,
        default=0,
        help="0: the deployment's own users; 1-9: other people (own user ids and IPs), e.g. test traffic "
        "beside the running simulator (default: %(default)s)",
    )
    p.add_argument(
        "--population",
        type=Path,
        help="keep the simulated users in this directory and continue them on every start (the stack's "
        "service uses <data dir>/simulator/population); without it each run has a population of its own",
    )
    p.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="with --population: on its first start, produce this many days of history of the population "
        "(simulated clock, then real time; simulator/history.py) (default: %(default)s)",
    )
    p.add_argument(
        "--history-pace",
        type=float,
        default=HISTORY_PACE,
        help="messages per wall-clock second while producing the history (default: %(default)s)",
    )
    p.add_argument(
        "--max-payload-bytes",
        type=int,
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        help="size above which the parser quarantines a payload (default: %(default)s)",
    )
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    try:
        thresholds = DetectionThresholds.from_env()
    except ValueError as exc:
        raise SimulatorConfigError(f"{exc}: fix or unset that CEP_* variable") from None
    config = SimulatorConfig(
        seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
        rate=args.rate,
        duration_s=args.duration_s,
        count=args.count,
        users=args.users,
        clock=args.clock,
        start_ms=args.start_ms,
        malformed_rate=args.malformed_rate,
        max_payload_bytes=args.max_payload_bytes,
        scenarios=not args.no_scenarios,
        scenario_rate=args.scenario_rate,
        thresholds=thresholds,
        topic=args.topic,
        out_dir=args.out_dir,
        identity_space=args.identity_space,
    )
    config.validate()
    return config


def _stop_on_signals(stop: threading.Event) -> None:
    """First Ctrl-C/SIGTERM: stop producing, flush, write ground truth. A second one: abort."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("stopping (signal %s): flushing and writing ground truth", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        config = build_config(args)
        ensure_reachable(args.bootstrap_servers)
        producer = make_producer(args.bootstrap_servers, security=current().kafka_transport.librdkafka())
        partitions = check_topic(producer, config.topic, args.bootstrap_servers)
    except SimulatorConfigError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    log.info(
        "producing to %s (%d partitions) at %s, clock=%s, seed=%d",
        config.topic,
        partitions,
        args.bootstrap_servers,
        config.clock,
        config.seed,
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    store = PopulationStore(args.population) if args.population else None
    if store is not None and args.history_days > 0:
        produce_history(config, producer, store, current().data_dir / "simulator", args.history_days,
                        args.history_pace, int(time.time() * 1000), stop)
    if stop.is_set():
        return 0
    if store is not None:
        log.info("population %s: %s", args.population, "continued" if store.exists() else "created")
    summary = run(config, producer, stop=stop, store=store)
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0 if summary["failed"] == 0 and summary["undelivered_after_flush"] == 0 else 1
