"""Model quality against the simulator's ground truth, through the real pipeline: a simulated-clock run of
N users over 7 days is produced to Kafka, landed into bronze by Dagster runs, refined into silver and
turned into user features by the daily assets (Spark Connect, Delta), and both models are trained and
evaluated on the last full day's features with ml.evaluation.evaluate_models: KMeans against the personas
(adjusted Rand index), IsolationForest against the drifting users (ROC-AUC, PR-AUC, precision and recall
at the threshold). Services of its own on free ports.

The producer is paced (--produce-rate messages per wall-clock second): unpaced, the simulated clock packs
days into a few broker minutes, and a landing window of millions of messages ran a 6 GB Spark driver out
of heap (bench/RESULTS.md, 2026-11-26).

    .venv/bin/python -m bench.ml_quality [--users 20000] [--rate 25] [--days 7] [--produce-rate 30000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from confluent_kafka import Producer

from analytics_defs.constants import USER_FEATURES_TABLE
from assets.delta import read_day
from assets.silver import silver_user_events
from bench.common import Services, append_result
from ml.evaluation import evaluate_models
from ml.truth import read_drifting_users, read_personas
from simulator import SimulatorConfig, make_producer, run
from tests.lakehouse_flow import Lakehouse, wait_until_closed


class PacedProducer:
    """A producer that sends at most `rate` messages per wall-clock second (the rest is delegated)."""

    def __init__(self, producer: Producer, rate: float):
        self._producer, self._rate, self._sent, self._started = producer, rate, 0, time.monotonic()

    def produce(self, *args, **kwargs) -> None:
        self._sent += 1
        ahead = self._sent / self._rate - (time.monotonic() - self._started)
        if ahead > 0.05:
            self._producer.poll(0)
            time.sleep(ahead)
        self._producer.produce(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._producer, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=25.0, help="events per simulated second")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--produce-rate", type=float, default=30_000, help="messages per wall-clock second")
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    with Services(driver_memory=args.driver_memory, kafka=True, postgres=True, spark=True) as svc:
        root = Path(tempfile.mkdtemp(prefix="bench-ml-", dir=svc.cfg.data_dir))
        now_ms = int(time.time() * 1000)
        start_ms = (now_ms // 86_400_000 - args.days) * 86_400_000  # midnight, `days` days ago
        t0 = time.perf_counter()
        summary = run(SimulatorConfig(seed=args.seed, clock="simulated", users=args.users, rate=args.rate,
                                      start_ms=start_ms, duration_s=(now_ms - 60_000 - start_ms) / 1000,
                                      out_dir=root / "truth" / "run"),
                      PacedProducer(make_producer(svc.cfg.kafka_bootstrap), args.produce_rate))
        produced = time.perf_counter() - t0
        wait_until_closed()
        lakehouse = Lakehouse(svc.cfg.kafka_bootstrap, svc.cfg.spark_remote, svc.cfg.postgres_url, root / "warehouse")
        t1 = time.perf_counter()
        windows = lakehouse.land_new_windows(start_ms)
        landed = time.perf_counter() - t1
        days = lakehouse.refresh_requests()
        last_full = date.fromordinal(datetime.fromtimestamp(now_ms / 1000, UTC).date().toordinal() - 1).isoformat()
        t2 = time.perf_counter()
        for d in days:  # silver of every day; features (and the SQL models) of the evaluated day
            lakehouse.build_day(d, None if d == last_full else [silver_user_events])
        built = time.perf_counter() - t2
        features = read_day(lakehouse.path(USER_FEATURES_TABLE), "feature_date", date.fromisoformat(last_full))
        truth = root / "truth"
        t3 = time.perf_counter()
        evaluation = evaluate_models(features, personas=read_personas(truth), drifting=read_drifting_users(truth))
        evaluated = time.perf_counter() - t3
    lines = [
        (f"simulated {args.days} days, {args.users:,} users, {summary['delivered']:,} messages "
        f"(produced in {produced:.0f}s), seed {args.seed}"),
        (f"pipeline: {len(windows)} windows landed in {landed:.0f}s; silver of {len(days)} days and the features "
        f"of {last_full} built in {built:.0f}s; training + evaluation {evaluated:.0f}s"),
        *evaluation.lines(),
    ]
    print("\n".join(lines))
    append_result("Model quality on the simulator's truth (bench/ml_quality.py)",
                  f"-m bench.ml_quality --users {args.users} --rate {args.rate} --days {args.days} "
                  f"--produce-rate {args.produce_rate:g} --driver-memory {args.driver_memory}", lines)


if __name__ == "__main__":
    main()
