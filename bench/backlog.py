"""Backlog drain with `make up` running: the Dagster daemon is stopped while the simulator goes on, so N
closed windows pile up; then `lakehouse up` starts the daemon again and the window sensor requests them
(at most 10 per tick, oldest first), the run queue launches them (two at a time), and they land. Prints
the backlog's total rows/s (rows of the N windows / seconds from the daemon's start to the last window
landed) against the single-window figures of the runs before the stop (rows per window / seconds of the
window's run, landing only; and the same rows over the window's freshness).

    .venv/bin/python -m bench.backlog [--windows 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

from bench.common import append_result
from settings import Settings
from stack.procs import Supervisor, wait_until
from stack.services.dagster import DagsterDaemon
from tests.lakehouse_cli import lakehouse

QUERY = (
    "SELECT extract(epoch FROM window_start), rows_in, seconds, freshness_seconds FROM streaming_performance "
    "WHERE pipeline = 'bronze_user_events' AND window_start >= to_timestamp(%s) AND window_start < to_timestamp(%s) "
    "ORDER BY window_start"
)


def landed(cfg: Settings, start: float, end: float) -> list[tuple[float, int, float, float]]:
    """(window start, rows, run seconds, freshness) of the windows in [start, end) that have landed."""
    with psycopg.connect(cfg.postgres_url, connect_timeout=5) as conn:
        return [(float(w), int(n), float(s), float(f)) for w, n, s, f in conn.execute(QUERY, (start, end)).fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=10)
    args = parser.parse_args()
    cfg = Settings.from_env()
    env = dict(os.environ)  # `up` again as the stack was started
    daemon, supervisor = DagsterDaemon(cfg), Supervisor(cfg.run_dir, cfg.log_dir, cfg.host)
    if supervisor.pid(daemon.name) is None:
        raise SystemExit("the stack is not running here: `make up` first (and let it land a few windows)")

    stopped = time.time()
    supervisor.stop(daemon.spec())  # a stop, not a crash: the watchdog leaves it stopped
    first = (stopped // 60 + 1) * 60  # the first window that starts with no daemon
    last_end = first + args.windows * 60
    print(f"daemon stopped; waiting for {args.windows} windows to close ({last_end - time.time():.0f} s)", flush=True)
    time.sleep(max(0.0, last_end - time.time()) + 3)
    restarted = time.time()
    up = lakehouse(env, "up")
    if up.returncode != 0:
        raise SystemExit(up.stdout + up.stderr)
    if not wait_until(lambda: len(landed(cfg, first, last_end)) >= args.windows, 900, 2.0):
        raise SystemExit(f"the backlog did not land within 15 minutes: {landed(cfg, first, last_end)}")
    drained = time.time() - restarted
    backlog = landed(cfg, first, last_end)
    rows = sum(n for _, n, _, _ in backlog)
    before = landed(cfg, stopped - 20 * 60, (stopped // 60 - 1) * 60)  # steady state before the stop
    if not before:
        raise SystemExit("no window landed in the 20 minutes before the stop: let the stack run first")
    single_run = statistics.median(n / s for _, n, s, _ in before if s)
    single_fresh = statistics.median(n / f for _, n, _, f in before if f)
    lines = [
        (f"backlog: {len(backlog)} windows, {rows:,} rows, landed {drained:.0f} s after the daemon started "
        f"-> {rows / drained:,.0f} rows/s"),
        (f"single windows before the stop ({len(before)}): median {statistics.median(n for _, n, _, _ in before):,.0f} "
        f"rows, {single_run:,.0f} rows/s over the run's landing seconds, {single_fresh:,.0f} rows/s over the "
        f"window's freshness"),
        f"backlog / single-window landing rate: {rows / drained / single_run:.2f}x",
    ]
    print("\n".join(lines))
    append_result("Backlog drain (bench/backlog.py)", f"-m bench.backlog --windows {args.windows}", lines)


if __name__ == "__main__":
    main()
