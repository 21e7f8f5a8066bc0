"""Freshness with `make up` running: for every row of the windows landed in the last N minutes,

  bronze: (time the row became queryable in bronze) - (its broker timestamp);
  silver: (time the row became queryable in silver) - (its event time).

A row becomes queryable in bronze when the Delta commit that first wrote its window lands; in silver
when the first commit of its event day that started reading bronze after that bronze commit lands (a
silver refresh reads the bronze of its day at its start: commit time minus the commit's execution
time). Commit times and what they wrote come from the tables' history (`replaceWhere` predicates), read
with delta-rs. With `--wait`, the script first waits N minutes so the figures cover traffic produced
while it runs.

    .venv/bin/python -m bench.freshness [--minutes 10] [--wait]
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
from deltalake import DeltaTable

from analytics_defs.constants import BRONZE_USER_EVENTS_TABLE, SILVER_USER_EVENTS_TABLE
from bench.common import append_result
from settings import Settings

_WINDOWS = re.compile(r"window_start >= TIMESTAMP '([0-9-]+ [0-9:]+)' AND window_start < TIMESTAMP '([0-9-]+ [0-9:]+)'")
_DAY = re.compile(r"event_date = DATE '([0-9-]+)'")


def _predicate(commit: dict) -> str:
    return str((commit.get("operationParameters") or {}).get("predicate", ""))


def first_commit_per_window(table: DeltaTable) -> dict[datetime, float]:
    """window_start -> epoch seconds of the first commit that wrote it."""
    first: dict[datetime, float] = {}
    for commit in table.history():
        match = _WINDOWS.search(_predicate(commit))
        if not match:
            continue
        start, end = (datetime.strptime(m, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for m in match.groups())
        committed = commit["timestamp"] / 1000
        window = start
        while window < end:
            first[window] = min(committed, first.get(window, committed))
            window += timedelta(minutes=1)
    return first


def silver_refreshes(table: DeltaTable) -> dict[str, list[tuple[float, float]]]:
    """event day -> (read started, committed) of every silver refresh of that day, epoch seconds."""
    refreshes: dict[str, list[tuple[float, float]]] = {}
    for commit in table.history():
        match = _DAY.search(_predicate(commit))
        if not match:
            continue
        committed = commit["timestamp"] / 1000
        took = float((commit.get("operationMetrics") or {}).get("executionTimeMs", 0)) / 1000
        refreshes.setdefault(match.group(1), []).append((committed - took, committed))
    return refreshes


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
    table = DeltaTable(f"{cfg.warehouse}/{BRONZE_USER_EVENTS_TABLE}")
    commits = first_commit_per_window(table)
    since = datetime.fromtimestamp(time.time() - args.minutes * 60 - 90, UTC)
    windows = sorted(w for w in commits if w >= since)
    if not windows:
        raise SystemExit(f"no window landed since {since:%H:%M:%S} UTC: is `make up` running with the simulator on?")
    rows = table.to_pyarrow_table(columns=["window_start", "kafka_timestamp", "occurred_at_ts"],
                                  filters=[("window_start", ">=", since)])
    try:
        refreshes = silver_refreshes(DeltaTable(f"{cfg.warehouse}/{SILVER_USER_EVENTS_TABLE}"))
    except Exception:  # noqa: BLE001 - no silver table yet: report bronze alone
        refreshes = {}
    bronze_lat: list[float] = []
    silver_lat: list[float] = []
    not_in_silver = 0
    for window in windows:
        of_window = rows.filter(pc.equal(rows["window_start"], window))
        committed = commits[window]
        bronze_lat += [committed - ts.timestamp() for ts in of_window["kafka_timestamp"].to_pylist()]
        for event_time in of_window["occurred_at_ts"].to_pylist():
            day = event_time.date().isoformat()
            after = [c for started, c in refreshes.get(day, []) if started >= committed]
            if after:
                silver_lat.append(min(after) - event_time.timestamp())
            else:
                not_in_silver += 1
    bronze_lat.sort()
    silver_lat.sort()

    def line(name: str, values: list[float]) -> str:
        if not values:
            return f"  {name}: no rows yet"
        return (f"  {name}: p50 {percentile(values, 0.50):.1f}  p95 {percentile(values, 0.95):.1f}  "
                f"p99 {percentile(values, 0.99):.1f}  max {values[-1]:.1f}  min {values[0]:.1f}")

    lines = [
        f"windows: {len(windows)} ({windows[0]:%H:%M} .. {windows[-1]:%H:%M} UTC), rows: {len(bronze_lat):,}",
        ("freshness in seconds (bronze: first commit of the row's window - broker timestamp; "
        "silver: first silver refresh of its day that read bronze after that commit - event time):"),
        line("bronze", bronze_lat),
        line(f"silver ({len(silver_lat):,} rows; {not_in_silver:,} not refreshed into silver yet)", silver_lat),
    ]
    print("\n".join(lines))
    append_result("Freshness (bench/freshness.py)", f"-m bench.freshness --minutes {args.minutes}", lines)


if __name__ == "__main__":
    main()
