"""Freshness of bronze with `make up` running: for every row of the windows landed in the last N
minutes, (time the row became queryable) − (its broker timestamp).

A row becomes queryable when the Delta commit that first wrote its window lands; the commit times and
the windows they wrote come from the table's history (`replaceWhere` predicate), read with delta-rs.
With `--wait`, the script first waits N minutes so the figures cover traffic produced while it runs.

    .venv/bin/python -m bench.freshness [--minutes 10] [--wait]
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime

import pyarrow.compute as pc
from deltalake import DeltaTable

from analytics_defs.constants import BRONZE_USER_EVENTS_TABLE
from bench.common import append_result
from settings import Settings

_WINDOW = re.compile(r"window_start = TIMESTAMP '([0-9-]+ [0-9:]+)'")


def first_commit_per_window(table: DeltaTable) -> dict[datetime, float]:
    """window_start -> epoch seconds of the first commit that wrote it."""
    first: dict[datetime, float] = {}
    for commit in table.history():
        predicate = str((commit.get("operationParameters") or {}).get("predicate", ""))
        match = _WINDOW.search(predicate)
        if not match:
            continue
        window = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        committed = commit["timestamp"] / 1000
        first[window] = min(committed, first.get(window, committed))
    return first


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--wait", action="store_true", help="wait --minutes first, then measure them")
    args = parser.parse_args()
    cfg = Settings.from_env()
    if args.wait:
        time.sleep(args.minutes * 60 + 90)  # and let the last window land
    path = str(cfg.warehouse_dir / BRONZE_USER_EVENTS_TABLE)
    table = DeltaTable(path)
    commits = first_commit_per_window(table)
    since = datetime.fromtimestamp(time.time() - args.minutes * 60 - 90, UTC)
    windows = sorted(w for w in commits if w >= since)
    if not windows:
        raise SystemExit(f"no window landed since {since:%H:%M:%S} UTC: is `make up` running with the simulator on?")
    rows = table.to_pyarrow_table(columns=["window_start", "kafka_timestamp"], filters=[("window_start", ">=", since)])
    latencies: list[float] = []
    for window in windows:
        stamps = rows.filter(pc.equal(rows["window_start"], window))["kafka_timestamp"]
        committed = commits[window]
        latencies += [committed - ts.timestamp() for ts in stamps.to_pylist()]
    latencies.sort()
    lines = [
        f"windows: {len(windows)} ({windows[0]:%H:%M} .. {windows[-1]:%H:%M} UTC), rows: {len(latencies):,}",
        "row freshness = first commit of its window - broker timestamp (seconds):",
        (f"  p50 {percentile(latencies, 0.50):.1f}  p95 {percentile(latencies, 0.95):.1f}  "
        f"p99 {percentile(latencies, 0.99):.1f}  max {latencies[-1]:.1f}  min {latencies[0]:.1f}"),
    ]
    print("\n".join(lines))
    append_result("Freshness (bench/freshness.py)", f"-m bench.freshness --minutes {args.minutes}", lines)


if __name__ == "__main__":
    main()
