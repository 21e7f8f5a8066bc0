"""Alert to screen: from an alert's row committed in PostgreSQL to the dashboard page (Debian's chromium,
driven by Playwright) showing it in the alerts table, without a reload. Target: p95 under 1 s.

Starts PostgreSQL, Kafka and the dashboard on free ports (bench/dashboard_api.py's stack), opens the page,
then commits alerts one at a time at random intervals (as the alert loader would store them). The page's
own clock stamps each row as it enters the table (a MutationObserver); the latency of an alert is that
stamp minus the wall-clock time taken just before its COMMIT (same machine, same clock), so the commit
itself is counted. The path measured: NOTIFY at commit, the dashboard's LISTEN, its read of the row, the
server-sent event, the page's rendering.

    .venv/bin/python -m bench.alert_to_screen [--alerts 200] [--interval-ms 250]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import psycopg
from playwright.sync_api import sync_playwright

from bench.common import append_result
from bench.dashboard_api import dashboard_stack, percentile
from tests import dashboard_data as data

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
OBSERVER = """() => {
  window.__seen = {};
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) for (const n of r.addedNodes)
      if (n.dataset && n.dataset.alertId && !(n.dataset.alertId in window.__seen)) window.__seen[n.dataset.alertId] = now;
  }).observe(document.getElementById("alerts-body"), { childList: true });
}"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.alert_to_screen", description=__doc__.split("\n")[0])
    p.add_argument("--alerts", type=int, default=200)
    p.add_argument("--interval-ms", type=float, default=250.0, help="mean time between alerts (uniform 0..2x)")
    args = p.parse_args(argv)
    committed: dict[str, float] = {}
    with dashboard_stack(alerts=100) as (services, url), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#stream-state[data-state=live]", timeout=15_000)
        page.wait_for_selector("#alerts-body tr", timeout=15_000)
        page.evaluate(OBSERVER)
        columns = ", ".join(data.ALERT_COLUMNS)
        placeholders = ", ".join(["%s"] * len(data.ALERT_COLUMNS))
        with psycopg.connect(services.cfg.postgres_url) as conn:
            for i in range(args.alerts):
                row = data.alert_row(*data.RULES[i % len(data.RULES)])
                conn.execute(f"INSERT INTO security_alerts ({columns}) VALUES ({placeholders})", row)
                committed[row[0]] = time.time() * 1000
                conn.commit()
                time.sleep(random.uniform(0, 2 * args.interval_ms) / 1000)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = page.evaluate("() => window.__seen")
            if len(set(committed) & set(seen)) == len(committed):
                break
            time.sleep(0.2)
        browser.close()
    latencies = [seen[a] - t for a, t in committed.items() if a in seen]
    missing = len(committed) - len(latencies)
    lines = [(f"{len(committed)} alerts committed one at a time, mean interval {args.interval_ms:.0f} ms; "
              f"{len(latencies)} shown, {missing} not shown within 10 s"),
             "commit -> row in the page's table (ms): " + "  ".join(
                 f"p{q} {percentile(latencies, q):.0f}" for q in (50, 95, 99)) + f"  max {max(latencies):.0f}"]
    print("\n".join(lines))
    command = "-m bench.alert_to_screen " + " ".join(argv if argv is not None else sys.argv[1:])
    append_result("Dashboard alert to screen (bench/alert_to_screen.py)", command.strip(), lines)
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
