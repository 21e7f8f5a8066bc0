"""CEP detection quality: recall and precision per rule on a simulator run with ground truth.

Starts its own Kafka broker, PostgreSQL, CEP job (embedded mini-cluster, default thresholds) and alert
loader on free ports. Produces a simulated-clock run (default: 10 minutes of simulated time at 1,000
events/s, every scenario template injected many times over background traffic) as fast as the broker
takes it, waits until the job has read every message and the alerts have settled, then scores the
distinct alerts against the run's labels (bench.cep.score):

  recall    = complete positive scenarios that got an alert of their rule on their subject / all of them
  precision = alerts whose (rule, subject) a complete positive scenario expects / all distinct alerts

Scenarios cut off by the end of the run (label.complete false) are left out of recall. Targets: recall
1.0 and precision >= 0.99 for brute force, account takeover and impossible travel.

    .venv/bin/python -m bench.cep_quality [--duration-s 600] [--rate 1000] [--scenario-rate 40]
        [--users 25000] [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.cep import (
    AlertCapture,
    cep_stack,
    rule_counts,
    score,
    stored_alerts,
    wait_for_quiet,
    wait_until_read,
)
from bench.common import append_result
from contract.detection import (
    RULE_ACCOUNT_TAKEOVER,
    RULE_BRUTE_FORCE,
    RULE_IMPOSSIBLE_TRAVEL,
    DetectionThresholds,
)
from contract.topics import USER_EVENTS
from simulator import SimulatorConfig, load_ground_truth, make_producer, run

TARGET_RULES = (RULE_BRUTE_FORCE, RULE_ACCOUNT_TAKEOVER, RULE_IMPOSSIBLE_TRAVEL)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cep_quality", description=__doc__.split("\n")[0])
    p.add_argument("--duration-s", type=float, default=600.0, help="simulated seconds (default %(default)s)")
    p.add_argument("--rate", type=float, default=1000.0, help="events per simulated second")
    p.add_argument("--scenario-rate", type=float, default=40.0, help="scenarios started per simulated minute")
    p.add_argument("--users", type=int, default=25_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    return p.parse_args(argv)


def fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    with cep_stack() as stack:
        capture = AlertCapture(stack.bootstrap)
        config = SimulatorConfig(seed=args.seed, clock="simulated", rate=args.rate, duration_s=args.duration_s,
                                 users=args.users, scenario_rate=args.scenario_rate, thresholds=DetectionThresholds(),
                                 topic=USER_EVENTS, out_dir=stack.cfg.data_dir / "simulator" / "quality",
                                 run_id="cep-quality")
        started = time.monotonic()
        summary = run(config, make_producer(stack.bootstrap))
        produced_s = time.monotonic() - started
        if not wait_until_read(stack, summary["delivered"], 600):
            say(f"WARNING: the job read {stack.records_read()} of {summary['delivered']} messages in time")
        read_s = time.monotonic() - started
        wait_for_quiet(lambda: len(stored_alerts(stack.postgres_url)), 5, 120)
        alerts = capture.stop()
        stored = stored_alerts(stack.postgres_url)
        truth = load_ground_truth(summary["out_dir"])  # inside: the run's directory goes with the stack
    scores, problems = score(truth.labels, alerts)

    say(f"CEP quality: {args.duration_s:.0f} simulated s at {args.rate:.0f} events/s, {args.users} users, "
        f"{args.scenario_rate:.0f} scenarios/min, seed {args.seed}")
    say(f"input: {summary['delivered']} messages produced in {produced_s:.1f}s, all read by the job after "
        f"{read_s:.1f}s ({summary['delivered'] / read_s:.0f} msg/s through the job from a backlog)")
    say(f"alerts: {len({a['alert_id'] for a in alerts})} distinct ({len(alerts)} records on the topic), "
        f"{len(stored)} rows in PostgreSQL; by rule {dict(rule_counts(alerts))}")
    say(f"{'rule':<22} {'scenarios':>9} {'found':>6} {'controls':>8} {'alerts':>7} {'true':>6} {'recall':>7} "
        f"{'precision':>9}")
    for rule, s in scores.items():
        say(f"{rule:<22} {s.positives:>9} {s.found:>6} {s.controls:>8} {s.alerts:>7} {s.true_alerts:>6} "
            f"{fmt(s.recall):>7} {fmt(s.precision):>9}")
    for problem in problems[:20]:
        say(f"  {problem}")
    if len(problems) > 20:
        say(f"  ... and {len(problems) - 20} more")
    met = all(scores[r].recall == 1.0 and (scores[r].precision or 0) >= 0.99 for r in TARGET_RULES)
    say(f"target recall 1.0 and precision >= 0.99 for {', '.join(TARGET_RULES)}: {'met' if met else 'NOT met'}")
    if not args.no_record:
        append_result("CEP detection quality", "-m bench.cep_quality " + " ".join(argv or sys.argv[1:]), lines)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
