"""The first hour of a new deployment, as a newcomer meets it: `lakehouse up` on an empty data dir with the
defaults (a week of history, 4,000 users at 5 events/s), then the stack left running. Prints when each
stage was reached (services up, history produced, landed, silver and features of every event day, each
training run, both champions), then keeps the stack running for `--live-minutes` while the open day is
re-scored, and ends with `lakehouse score-alerts` (CEP rules and behavior_anomaly per day against the
simulator's truth) and the anomaly champion's scorings from `ml_scoring_runs`.

    .venv/bin/python -m bench.first_hour [--history-days 7] [--live-minutes 20] [--keep]

--keep leaves the stack running (its data dir and URLs are printed) for a look at the UIs; stop it with
`LAKEHOUSE_DATA_DIR=<dir> .venv/bin/lakehouse down`.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench.common import append_result
from settings import Settings
from stack.first_hour import read_progress
from tests.lakehouse_cli import LAKEHOUSE, cli_env, lakehouse

POLL_S = 15.0
USER_DEFAULTS = ("LAKEHOUSE_PARTITIONS_START", "LAKEHOUSE_EVENT_LOOKBACK_DAYS", "SPARK_DRIVER_MEMORY")


def _stream(process: subprocess.Popen, started: float, lines: list[str]) -> None:
    for line in process.stdout:
        stamped = f"[{(time.monotonic() - started) / 60:5.1f} min] {line.rstrip()}"
        lines.append(stamped)
        print(stamped, flush=True)


def _milestones(cfg: Settings, started: float, until: float) -> dict[str, float]:
    """Minutes from `up` until each stage was first seen done."""
    seen: dict[str, float] = {}

    def mark(name: str, done: bool) -> None:
        if done and name not in seen:
            seen[name] = (time.monotonic() - started) / 60
            print(f"  reached: {name} after {seen[name]:.1f} min", flush=True)

    while time.monotonic() < until:
        p = read_progress(cfg)
        h = p.history
        mark("history produced", h is not None and h.done)
        mark("history landed", h is not None and h.done and p.landed is not None and p.landed >= 0.98 * h.delivered)
        for name, (done, total) in p.days.items():
            mark(f"{name} of every event day with data", h is not None and done >= min(total, h.days + 1))
        for day, status in p.training:
            mark(f"training on {day}: {status.lower()}", status in ("SUCCESS", "FAILURE"))
        mark("both champions", p.trained)
        if p.trained and sum(1 for _, s in p.training if s in ("SUCCESS", "FAILURE")) >= 2:
            break
        time.sleep(POLL_S)
    return seen


def _scorings(cfg: Settings) -> list[str]:
    with psycopg.connect(cfg.postgres_url) as conn:
        rows = conn.execute(
            "SELECT scored_date, to_char(scored_at, 'HH24:MI:SS'), model_version, trusted, eligible_users, "
            "past_threshold, alerted_users, budget, capped FROM ml_scoring_runs ORDER BY scored_at").fetchall()
    return [f"  {d} at {t}: v{v} {'trusted' if tr else 'probation'}, {e} eligible, {p} past the threshold, "
            f"{a} alerted of a budget of {b}, {c} capped" for d, t, v, tr, e, p, a, b, c in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--live-minutes", type=float, default=20.0,
                        help="how long the stack runs on after both champions exist")
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lakehouse-first-hour-"))
    data_dir.chmod(0o755)
    env = cli_env(data_dir, SIMULATOR_ENABLED="1", SIMULATOR_HISTORY_DAYS=str(args.history_days))
    for name in USER_DEFAULTS:  # what bench/__init__ and the tests set for themselves: a user sets none of it
        env.pop(name, None)
    cfg = Settings.from_env(env)
    started = time.monotonic()
    up_lines: list[str] = []
    process = subprocess.Popen([LAKEHOUSE, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL)
    reader = threading.Thread(target=_stream, args=(process, started, up_lines), daemon=True)
    reader.start()
    try:
        while not (cfg.run_dir / "watchdog.pid").exists() and process.poll() is None:
            time.sleep(2)
        services_up = (time.monotonic() - started) / 60
        seen = _milestones(cfg, started, started + args.timeout_minutes * 60)
        process.wait(timeout=120)
        time.sleep(args.live_minutes * 60)
        scores = lakehouse(env, "score-alerts", timeout=300).stdout.splitlines()
        scorings = _scorings(cfg)
        progress = read_progress(cfg).line()
    finally:
        if not args.keep:
            lakehouse(env, "down")
    lines = [(f"fresh data dir, defaults ({cfg.simulator_users:,} users, {cfg.simulator_rate:g} events/s, "
              f"{args.history_days} days of history), then {args.live_minutes:g} min of the stack left running:"),
             f"  services up (watchdog started) after {services_up:.1f} min",
             *[f"  {name} after {minutes:.1f} min" for name, minutes in seen.items()],
             f"  at the end: {progress}", "anomaly champion's scorings (ml_scoring_runs):", *scorings,
             "score-alerts:", *[f"  {line}" for line in scores]]
    print("\n".join(lines))
    if args.keep:
        print(f"still running: LAKEHOUSE_DATA_DIR={data_dir}; dashboard http://{cfg.host}:{cfg.dashboard_port}, "
              f"Dagster http://{cfg.host}:{cfg.dagster_port}, MLflow {cfg.mlflow_tracking_uri}")
    append_result("First hour (bench/first_hour.py)",
                  f"-m bench.first_hour --history-days {args.history_days} --live-minutes {args.live_minutes:g}", lines)


if __name__ == "__main__":
    main()
