"""Daily layers benchmark: silver for one day of millions of events, and user features for one day over
100,000 users, on a Spark Connect server of its own (free port, temporary directory).

The input is generated in Spark (no Kafka needed): one day of bronze rows with 1% cross-window
duplicates, and seven days of silver over N users. Then, alternately, in the same process on the same
data:

  - silver:   assets.refine.refine_day (dedup by first copy, typed columns, replaceWhere of the day, counts
              and read-back) and then the silver Great Expectations gate on the committed day;
  - baseline: the simplest honest Spark job: read the same bronze rows of the day, dropDuplicates on
              event_id, write Delta (overwrite);
  - features: assets.featurize.build_features_day and the features gate, over the 7 days up to the day.

    .venv/bin/python -m bench.daily [--events 5000000] [--users 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from assets.delta import day_predicate, read_table
from assets.featurize import build_features_day
from assets.quality import features_suite, silver_suite, validate
from assets.refine import bronze_of_day, refine_day
from bench.common import Services, append_result, peak_rss_mb
from resources.spark import SparkResource

DAY = date(2026, 11, 20)
_TYPES = "array('PAGE_VIEW','PAGE_VIEW','PAGE_VIEW','SEARCH','ADD_TO_CART','PURCHASE','LOGIN_SUCCESS'," \
         "'LOGIN_FAILED','LOGOUT','PROFILE_UPDATE')"


def make_bronze(spark, path: str, events: int, day: date) -> None:
    """One day of bronze rows: 1% are later copies (another window) of an earlier event."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    spark.range(events).selectExpr(
        "id",
        "CASE WHEN pmod(hash(id, 7), 100) = 0 AND id > 1000 THEN id - 1000 ELSE id END AS base",
    ).selectExpr(
        "regexp_replace(md5(CAST(base AS STRING)), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '$1-$2-$3-$4-$5') AS event_id",
        f"element_at({_TYPES}, 1 + CAST(pmod(hash(base, 1), 10) AS INT)) AS event_type",
        "concat('u-', lpad(CAST(pmod(hash(base, 2), 100000) AS STRING), 6, '0')) AS user_id",
        "concat('s-', CAST(pmod(hash(base, 3), 2000000) AS STRING)) AS session_id",
        f"CAST(unix_millis(TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}') + base * {86_400_000 // events} AS BIGINT) AS occurred_at",
        "concat('24.0.', CAST(pmod(hash(base, 4), 250) AS STRING), '.1') AS ip",
        "'DE' AS country", "52.5D AS lat", "13.4D AS lon",
        "concat('d-', CAST(pmod(hash(base, 5), 150000) AS STRING)) AS device_id", "'bench' AS user_agent",
        "map('amount', CAST(round(5 + pmod(hash(base, 6), 20000) / 100.0, 2) AS STRING), 'currency', 'EUR') AS properties",
        "1 AS schema_version",
        "CAST(pmod(id, 2) AS INT) AS kafka_partition", "id AS kafka_offset",
        "id - base AS _late",
    ).selectExpr(
        "*", "timestamp_millis(occurred_at) AS occurred_at_ts",
        # a copy arrives later than its original (in another window): its broker time is later
        f"timestamp_millis(occurred_at + 500 + _late * {86_400_000 // events}) AS kafka_timestamp",
    ).selectExpr(
        "*", "date_trunc('minute', kafka_timestamp) AS window_start", "current_timestamp() AS landed_at",
    ).drop("_late").write.format("delta").mode("overwrite").partitionBy("window_start").save(path)


def make_silver(spark, path: str, users: int, events_per_user_day: int, last_day: date) -> int:
    """Seven days of silver rows for `users` users, about `events_per_user_day` each per active day."""
    first = last_day - timedelta(days=6)
    per_day = users * events_per_user_day // 2  # about half the users are active on a given day
    total = per_day * 7
    spark.range(total).selectExpr(
        "id",
        f"date_add(DATE '{first.isoformat()}', CAST(id / {per_day} AS INT)) AS event_date",
        f"concat('u-', lpad(CAST(pmod(hash(id, 2), {users}) AS STRING), 6, '0')) AS user_id",
    ).selectExpr(
        "md5(CAST(id AS STRING)) AS event_id",
        f"element_at({_TYPES}, 1 + CAST(pmod(hash(id, 1), 10) AS INT)) AS event_type",
        "user_id",
        "concat(user_id, '-', CAST(event_date AS STRING), '-', CAST(pmod(hash(id, 3), 3) AS STRING)) AS session_id",
        "timestamp_seconds(unix_seconds(CAST(event_date AS TIMESTAMP)) + pmod(hash(id, 4), 86400)) AS event_time",
        "event_date", "concat('24.0.', CAST(pmod(hash(user_id), 250) AS STRING), '.1') AS ip", "'DE' AS country",
        "52.5D AS lat", "13.4D + pmod(hash(user_id, 9), 100) AS lon", "concat('d-', user_id) AS device_id",
        "'bench' AS user_agent", "map('page', '/') AS properties",
        "CASE WHEN pmod(hash(id, 1), 10) = 5 THEN CAST(pmod(hash(id, 6), 20000) / 100.0 AS DECIMAL(18,2)) END AS amount",
        "'EUR' AS currency", "1 AS schema_version", "0 AS kafka_partition", "id AS kafka_offset",
        "CAST(event_date AS TIMESTAMP) AS kafka_timestamp", "CAST(event_date AS TIMESTAMP) AS window_start",
    ).write.format("delta").mode("overwrite").partitionBy("event_date").save(path)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()
    with Services(driver_memory=args.driver_memory, spark=True) as svc:
        spark = SparkResource(remote=svc.cfg.spark_remote).get_session()
        root = Path(tempfile.mkdtemp(prefix="bench-daily-", dir=svc.cfg.data_dir))
        bronze = str(root / "bronze")
        t0 = time.perf_counter()
        make_bronze(spark, bronze, args.events, DAY)
        rows = bronze_of_day(spark, bronze, DAY).count()
        print(f"bronze: {rows:,} rows of {DAY} generated in {time.perf_counter() - t0:.1f}s")

        def ours(i: int) -> tuple[float, float]:
            path = str(root / f"silver{i}")
            started = time.perf_counter()
            result = refine_day(spark, bronze, path, DAY)
            refined = time.perf_counter() - started
            gate = validate(read_table(spark, path, day_predicate(DAY, "event_date")), "silver",
                            silver_suite(result.distinct_events))
            assert result.reconciles and gate.passed, (result, gate.failed)
            return refined, time.perf_counter() - started

        def baseline(i: int) -> float:
            started = time.perf_counter()
            (bronze_of_day(spark, bronze, DAY).dropDuplicates(["event_id"])
             .write.format("delta").mode("overwrite").save(str(root / f"baseline{i}")))
            return time.perf_counter() - started

        refine_s, silver_s, base_s = [], [], []
        for i in range(args.rounds):
            b = baseline(i)
            r, s = ours(i)
            base_s.append(b)
            refine_s.append(r)
            silver_s.append(s)
            print(f"round {i + 1}: baseline {b:.2f}s, refine_day {r:.2f}s, refine_day + gate {s:.2f}s")

        silver_path = str(root / "silver7")
        t0 = time.perf_counter()
        silver_rows = make_silver(spark, silver_path, args.users, 10, DAY)
        print(f"silver: {silver_rows:,} rows over 7 days for {args.users:,} users generated in "
              f"{time.perf_counter() - t0:.1f}s")
        feature_s, feature_gate_s, users = [], [], 0
        for i in range(args.rounds):
            features_path = str(root / f"features{i}")
            started = time.perf_counter()
            result = build_features_day(spark, silver_path, features_path, DAY)
            built = time.perf_counter() - started
            gate = validate(read_table(spark, features_path, day_predicate(DAY, "feature_date")), "features",
                            features_suite(result.active_users))
            assert gate.passed, gate.failed
            users = result.users
            feature_s.append(built)
            feature_gate_s.append(time.perf_counter() - started)
            print(f"round {i + 1}: features {built:.2f}s, with gate {feature_gate_s[-1]:.2f}s ({users:,} users)")
        peak = peak_rss_mb(svc.pid("spark-connect"))
        spark.stop()  # before the server stops: pyspark's exit hook would retry against a dead server

    med = statistics.median
    lines = [
        f"silver: one day of {rows:,} bronze rows (1% duplicates), {args.rounds} rounds alternating, medians",
        f"  baseline (read day, dropDuplicates, write Delta): {med(base_s):6.2f}s -> {rows / med(base_s):,.0f} rows/s",
        (f"  refine_day (first copy, types, replace, read-back): {med(refine_s):6.2f}s -> {rows / med(refine_s):,.0f} rows/s"
        f"  ratio {med(refine_s) / med(base_s):.2f}x"),
        (f"  refine_day + Great Expectations gate:              {med(silver_s):6.2f}s -> {rows / med(silver_s):,.0f} rows/s"
        f"  ratio {med(silver_s) / med(base_s):.2f}x (target <= 1.3x)"),
        f"features: one day over {users:,} users ({silver_rows:,} silver rows in the 7 days)",
        f"  build_features_day: {med(feature_s):.2f}s; with the features gate: {med(feature_gate_s):.2f}s (target < 120 s)",
        f"Spark Connect server peak memory (VmHWM): {peak:,.0f} MB (driver memory {args.driver_memory})",
    ]
    print("\n".join(lines))
    append_result("Silver and features (bench/daily.py)",
                  f"-m bench.daily --events {args.events} --users {args.users} --rounds {args.rounds}", lines)


if __name__ == "__main__":
    main()
