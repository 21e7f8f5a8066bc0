"""Model quality against the simulator's ground truth, through the real pipeline: a simulated-clock run of
N users over 7 days is produced to Kafka, landed into bronze by Dagster runs, refined into silver and
turned into user features by the daily assets (Spark Connect, Delta), and both models are trained and
evaluated on the last full day's features with ml.evaluation.evaluate_models: KMeans against the personas
(adjusted Rand index), IsolationForest against the drifting users (ROC-AUC, PR-AUC, precision and recall
at the threshold). Services of its own on free ports.

The producer is paced (--produce-rate messages per wall-clock second): unpaced, the simulated clock packs
days into a few broker minutes, and a landing window of millions of messages ran a 6 GB Spark driver out
of heap (bench/RESULTS.md, 2026-11-26).

Then, as the live stack does all day: the anomaly model trained on the closed day before (D−2) re-scores
the last full day D−1 as if it were still open, with features as of every `--every-hours` hours of
simulated time (assets/featurize.features_of over the silver rows before that moment), each pass through
the day's alert budget (ml/scoring.alerts_within_budget, earlier passes' alerts kept). Per pass: users
past the threshold (share), alerted, and precision / recall of the alerts against the users whose drift
had started by then.

    .venv/bin/python -m bench.ml_quality [--users 20000] [--rate 25] [--days 7] [--produce-rate 30000]
        [--every-hours 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer

from analytics_defs.constants import SILVER_USER_EVENTS_TABLE, USER_FEATURES_TABLE
from assets.delta import read_day
from assets.silver import silver_user_events
from bench.common import Services, append_result
from ml.anomaly import train_anomaly
from ml.evaluation import evaluate_models
from ml.scoring import alerts_within_budget, score_anomalies
from ml.truth import read_drifting_users, read_personas
from simulator import SimulatorConfig, make_producer, run
from tests.lakehouse_flow import Lakehouse, wait_until_closed


def drift_starts(truth: Path) -> dict[str, int]:
    """Drifting user -> the ms its drift started (from the run's labels)."""
    from alerts.scoring import drift_periods
    from simulator.truth import LABELS_FILE, read_labels

    labels = [lb for path in truth.glob(f"*/{LABELS_FILE}") for lb in read_labels(path)]
    return {user: start for user, (start, _) in drift_periods(labels).items()}


def rescoring_passes(lakehouse: Lakehouse, spark, day: date, truth: Path, every_hours: float) -> list[str]:
    """The model of D−1 (trained on D−2's closed features) re-scoring D as if open, every few hours."""
    import pyspark.sql.functions as F

    from assets.delta import date_range_predicate, read_table
    from assets.featurize import features_of, window_days

    previous = read_day(lakehouse.path(USER_FEATURES_TABLE), "feature_date", day - timedelta(days=1))
    model = train_anomaly(previous)
    model.version = "bench"  # scoring rows name a registered version; this one is not registered
    starts = drift_starts(truth)
    first, last = window_days(day)
    silver = read_table(spark, lakehouse.path(SILVER_USER_EVENTS_TABLE), date_range_predicate(first, last, "event_date"))
    midnight = datetime.combine(day, datetime.min.time(), UTC)
    alerted: set[str] = set()
    lines = [(f"re-scoring {day} as an open day with the model of {day - timedelta(days=1)} (threshold "
              f"{model.threshold.chosen:.3f}, budget {model.threshold.alert_share:.0%} of eligible users):")]
    hours = every_hours
    while hours <= 24 + 1e-9:
        as_of = midnight + timedelta(hours=hours)
        features = features_of(silver.where(F.col("event_time") < F.lit(as_of)), day, as_of).toPandas()
        scores, budget = alerts_within_budget(score_anomalies(model, features, day), alerted,
                                              model.threshold.alert_share, True)
        alerted |= set(scores.loc[scores["alerted"], "user_id"])
        drifting = {u for u, start in starts.items() if start < as_of.timestamp() * 1000}
        true = len(alerted & drifting)
        present = drifting & set(scores["user_id"])
        precision = true / len(alerted) if alerted else float("nan")
        recall = len(alerted & present) / len(present) if present else float("nan")
        lines.append(f"  as of {as_of:%H:%M}: {budget.eligible:,} eligible, {budget.past_threshold} past the "
                     f"threshold ({budget.past_threshold / max(1, budget.eligible):.2%}), {len(alerted)} alerted "
                     f"({budget.capped} capped); precision {precision:.2f}, recall {recall:.2f} "
                     f"({len(present)} drifting users scored)")
        hours += every_hours
    return lines


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
    parser.add_argument("--every-hours", type=float, default=2.0, help="re-scoring passes of the open day")
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
        before = (date.fromisoformat(last_full) - timedelta(days=1)).isoformat()
        for d in days:  # silver of every day; features (and the SQL models) of the evaluated day and the one before
            lakehouse.build_day(d, None if d in (last_full, before) else [silver_user_events])
        built = time.perf_counter() - t2
        features = read_day(lakehouse.path(USER_FEATURES_TABLE), "feature_date", date.fromisoformat(last_full))
        truth = root / "truth"
        t3 = time.perf_counter()
        evaluation = evaluate_models(features, personas=read_personas(truth), drifting=read_drifting_users(truth))
        evaluated = time.perf_counter() - t3
        passes = rescoring_passes(lakehouse, lakehouse.resources["spark"].get_session(), date.fromisoformat(last_full), truth, args.every_hours)
    lines = [
        (f"simulated {args.days} days, {args.users:,} users, {summary['delivered']:,} messages "
        f"(produced in {produced:.0f}s), seed {args.seed}"),
        (f"pipeline: {len(windows)} windows landed in {landed:.0f}s; silver of {len(days)} days and the features "
        f"of {last_full} built in {built:.0f}s; training + evaluation {evaluated:.0f}s"),
        *evaluation.lines(),
        *passes,
    ]
    print("\n".join(lines))
    append_result("Model quality on the simulator's truth (bench/ml_quality.py)",
                  f"-m bench.ml_quality --users {args.users} --rate {args.rate} --days {args.days} "
                  f"--produce-rate {args.produce_rate:g} --driver-memory {args.driver_memory} --every-hours {args.every_hours:g}",
                  lines)


if __name__ == "__main__":
    main()
