"""CEP latency benchmark: simulator traffic at 5,000 events/s in real time, with scenarios injected,
through the CEP job (embedded mini-cluster, default settings) and the alert loader.

Starts its own Kafka broker, PostgreSQL, CEP job and loader (free ports, temporary directory). The
simulator's stream (simulated clock starting a little in the future, so occurred_at is real time) is
generated first and then produced paced to each event's occurred_at: the same bytes a real-time
simulator run would send, without the simulator's Python generation competing for the two cores with
the system under test. A warm-up period precedes the measured window.

For every alert whose triggering event was produced in the measured window:

  - to topic (consumer):  time a consumer on security-alerts received it - the trigger's broker time
  - to topic (record ts): the alert record's timestamp (set when the job's producer sent it) - same
  - to PostgreSQL:        security_alerts.stored_at (insert time, the loader commits right after) - same
  - detected:             detected_at (when the job emitted it) - same

where the trigger's broker time is `trigger_event_ts`, the LogAppendTime of the event that completed
the pattern (its produce time as the broker recorded it). Also printed: the sustained input rate, the
job's CPU use and its checkpoints during the run.

    .venv/bin/python -m bench.cep_latency [--rate 5000] [--duration-s 60] [--warmup-s 20]
        [--scenario-rate 240] [--users 125000] [--seed 7] [--time-mode proctime|rowtime]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Producer

from bench.cep import (
    OCCURRED_AT,
    AlertCapture,
    cep_stack,
    format_percentiles,
    percentiles,
    rule_counts,
    stored_alerts,
    wait_for_quiet,
    wait_until_read,
)
from bench.common import append_result
from contract.detection import DetectionThresholds
from contract.topics import USER_EVENTS
from simulator import Simulator, SimulatorConfig

GENERATE_PER_S = 12_000  # conservative simulator generation speed, to schedule the start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cep_latency", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=5000.0, help="simulator events/s (default %(default)s)")
    p.add_argument("--duration-s", type=float, default=60.0, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup-s", type=float, default=20.0, help="traffic before the measured window")
    p.add_argument("--scenario-rate", type=float, default=240.0, help="scenarios started per minute")
    p.add_argument("--users", type=int, default=125_000, help="population (simulator: ~25 per event/s)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--time-mode", choices=("proctime", "rowtime"), default="proctime")
    p.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    return p.parse_args(argv)


def generate(args: argparse.Namespace, out_dir: Path) -> tuple[Simulator, list, list[int], int]:
    """The run's messages and their occurred_at; the stream starts once generation is done."""
    span_s = args.warmup_s + args.duration_s
    lead_ms = int((args.rate * span_s / GENERATE_PER_S + 10) * 1000)
    start_ms = int(time.time() * 1000) + lead_ms
    config = SimulatorConfig(seed=args.seed, clock="simulated", rate=args.rate, duration_s=span_s, users=args.users,
                             scenario_rate=args.scenario_rate, start_ms=start_ms, thresholds=DetectionThresholds(),
                             topic=USER_EVENTS, out_dir=out_dir, run_id="cep-latency")
    sim = Simulator(config)
    messages = list(sim.events())
    times, last, end_ms = [], start_ms, start_ms + int(span_s * 1000)
    for m in messages:
        found = OCCURRED_AT.search(m.value)
        when = int(found.group(1)) if found else last
        # malformed messages (no time, or dated far in the future on purpose) go out with their neighbours
        last = when if start_ms <= when <= end_ms else last
        times.append(last)
    return sim, messages, times, start_ms


def produce_paced(bootstrap: str, messages: list, times: list[int]) -> tuple[float, float]:
    """Send each message at its occurred_at; returns (first send, last send) wall times."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "all",
                         "enable.idempotence": True, "compression.type": "lz4"})
    first = None
    for i, (message, when) in enumerate(zip(messages, times, strict=True)):
        wait = when / 1000 - time.time()
        if wait > 0.0005:
            producer.poll(wait)
        if message.headers:
            producer.produce(USER_EVENTS, message.value, message.key, headers=message.headers)
        else:
            producer.produce(USER_EVENTS, message.value, message.key)
        first = first or time.time()
        if i % 500 == 0:
            producer.poll(0)
    last = time.time()
    if producer.flush(60):
        raise RuntimeError("messages left undelivered")
    return first, last


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = {"FLINK_CEP_TIME": args.time_mode}
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    load_before = os.getloadavg()
    with cep_stack(env) as stack:
        _, messages, times, start_ms = generate(args, stack.cfg.data_dir / "simulator")
        measure_from = start_ms + int(args.warmup_s * 1000)
        capture = AlertCapture(stack.bootstrap)
        if time.time() * 1000 > start_ms:
            print(f"note: generation overran the planned start by {time.time() - start_ms / 1000:.1f}s "
                  "(absorbed by the warm-up)", file=sys.stderr)
        cpu_at = {}
        first, last = produce_paced_with_marks(stack, messages, times, measure_from, cpu_at)
        wait_until_read(stack, len(messages), 120)
        wait_for_quiet(lambda: len(stored_alerts(stack.postgres_url)), 5, 60)
        alerts = capture.stop()
        stored = stored_alerts(stack.postgres_url)
        checkpoints = stack.checkpoints()
    load_after = os.getloadavg()

    measured = [m for m, t in zip(messages, times, strict=True) if t >= measure_from]
    window_s = (times[-1] - measure_from) / 1000
    in_window = {a["alert_id"]: a for a in alerts if a["trigger_event_ts"] >= measure_from}
    seen, record, detected, pg = [], [], [], []
    by_rule = defaultdict(list)
    for alert_id, a in in_window.items():
        first_seen = min(x["_seen_ms"] for x in alerts if x["alert_id"] == alert_id)
        seen.append(first_seen - a["trigger_event_ts"])
        record.append(a["_record_ts"] - a["trigger_event_ts"])
        detected.append(a["detected_at"] - a["trigger_event_ts"])
        by_rule[a["rule"]].append(first_seen - a["trigger_event_ts"])
        if alert_id in stored:
            pg.append(stored[alert_id]["stored_ms"] - a["trigger_event_ts"])
    missing_in_pg = len(in_window) - len(pg)

    say(f"CEP latency: {args.rate:.0f} events/s for {args.duration_s:.0f}s after {args.warmup_s:.0f}s warm-up, "
        f"ordering {args.time_mode}, seed {args.seed}, {args.users} users, {args.scenario_rate:.0f} scenarios/min")
    say(f"input: {len(messages)} messages sent in {last - first:.1f}s; measured window {len(measured)} messages "
        f"in {window_s:.1f}s = {len(measured) / window_s:.0f} msg/s sustained (all read by the job)")
    say(f"alerts: {len(in_window)} in the window, by rule {dict(rule_counts(list(in_window.values())))}; "
        f"{len(alerts)} alert records on the topic in total, {len(stored)} rows in PostgreSQL")
    say(format_percentiles("trigger -> alert on topic (consumer)", seen))
    say(format_percentiles("trigger -> alert record timestamp", record))
    say(format_percentiles("trigger -> row in PostgreSQL", pg))
    say(format_percentiles("trigger -> detected_at (in the job)", detected))
    for rule, values in sorted(by_rule.items()):
        say(format_percentiles(f"  {rule} (topic, consumer)", values))
    if missing_in_pg:
        say(f"WARNING: {missing_in_pg} alerts of the window are not in PostgreSQL")
    cpu = cpu_at.get("end", 0) - cpu_at.get("start", 0)
    say(f"job CPU in the measured window: {cpu:.1f} cpu-s = {cpu / window_s:.2f} cores")
    say("checkpoints: " + ", ".join(f"#{c['id']} {c['duration_ms']}ms {c['size_mb']}MB" for c in checkpoints))
    say(f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} (machine shared with other work)")
    p_topic, p_pg = percentiles(seen), percentiles(pg)
    if p_topic and p_pg:
        say(f"target p99 < 300 ms to topic: {'met' if p_topic['p99'] < 300 else 'NOT met'} ({p_topic['p99']:.0f} ms); "
            f"p99 < 1000 ms to PostgreSQL: {'met' if p_pg['p99'] < 1000 else 'NOT met'} ({p_pg['p99']:.0f} ms)")
    if not args.no_record:
        append_result("CEP latency", "-m bench.cep_latency " + " ".join(argv or sys.argv[1:]), lines)
    return 0


def produce_paced_with_marks(stack, messages, times, measure_from, cpu_at) -> tuple[float, float]:
    """produce_paced, noting the job's CPU time when the measured window starts and ends."""
    split = next((i for i, t in enumerate(times) if t >= measure_from), len(times))
    first, _ = produce_paced(stack.bootstrap, messages[:split], times[:split])
    cpu_at["start"] = stack.job_cpu_seconds()
    _, last = produce_paced(stack.bootstrap, messages[split:], times[split:])
    cpu_at["end"] = stack.job_cpu_seconds()
    return first, last


if __name__ == "__main__":
    sys.exit(main())
