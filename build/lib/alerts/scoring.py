"""Detection quality against the simulator's ground truth: per rule, how many planted scenarios raised
their alert (recall) and how many alerts a planted scenario explains (precision).

Used by the CEP benchmarks on one run and by `lakehouse score-alerts` on the live stack, where the
truth is every run directory the simulator wrote under `<data dir>/simulator/` (one per start), read
together: a restart is just another run of the same population.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contract.detection import RULE_SEVERITY
from simulator.truth import LABELS_FILE, RULE_BEHAVIOR_ANOMALY, SUMMARY_FILE, Label, read_labels, read_summary


@dataclass
class RuleScore:
    positives: int = 0  # complete labels expecting an alert
    found: int = 0  # of those, labels with at least one alert of the rule on their subject
    controls: int = 0  # complete labels expecting none
    alerts: int = 0
    true_alerts: int = 0  # alerts on a subject whose label expects this rule

    @property
    def false_alerts(self) -> int:
        return self.alerts - self.true_alerts

    @property
    def missed(self) -> int:
        return self.positives - self.found

    @property
    def recall(self) -> float | None:
        return self.found / self.positives if self.positives else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None


def subject(alert_or_label) -> str:
    user = alert_or_label["user_id"] if isinstance(alert_or_label, dict) else alert_or_label.user_id
    ip = alert_or_label["ip"] if isinstance(alert_or_label, dict) else alert_or_label.ip
    return user if user is not None else ip


def score(labels: Iterable[Label], alerts: Iterable[dict]) -> tuple[dict[str, RuleScore], list[str]]:
    """Per rule: recall over complete positive labels, precision over distinct alerts. An alert is true
    when a label of the same rule and subject expects an alert; anything else (a control's subject, a
    background user) counts against precision."""
    labels = [lb for lb in labels if lb.expected_rule != RULE_BEHAVIOR_ANOMALY]
    by_key = defaultdict(list)
    for lb in labels:
        by_key[(lb.expected_rule, subject(lb))].append(lb)
    scores = {rule: RuleScore() for rule in RULE_SEVERITY}
    problems = []
    hit = set()
    unique = {a["alert_id"]: a for a in alerts}
    for alert in unique.values():
        if alert["rule"] not in scores:
            continue
        s = scores[alert["rule"]]
        s.alerts += 1
        matching = [lb for lb in by_key.get((alert["rule"], subject(alert)), []) if lb.expected_alert]
        if matching:
            s.true_alerts += 1
            hit.update(id(lb) for lb in matching)
        else:
            scenarios = [lb.scenario for lb in by_key.get((alert["rule"], subject(alert)), [])] or ["background"]
            problems.append(f"false positive {alert['rule']} on {subject(alert)} ({', '.join(scenarios)})")
    for lb in labels:
        if not lb.complete:
            continue
        s = scores[lb.expected_rule]
        if lb.expected_alert:
            s.positives += 1
            if id(lb) in hit:
                s.found += 1
            else:
                problems.append(f"missed {lb.expected_rule} {lb.scenario} {subject(lb)}")
        else:
            s.controls += 1
    return scores, problems


def rule_counts(alerts: list[dict]) -> Counter:
    return Counter(a["rule"] for a in {a["alert_id"]: a for a in alerts}.values())


@dataclass(frozen=True)
class Truth:
    """Every label the simulator wrote under one data directory, and how far in time they reach."""

    labels: list[Label]
    runs: int
    covered_until_ms: int | None  # the latest simulated event any truth file knows of


def read_truth(simulator_dir: Path) -> Truth:
    """The labels of every run directory (`<dir>/*/labels.jsonl`), merged."""
    labels, runs, until = [], 0, None
    for labels_file in sorted(simulator_dir.glob(f"*/{LABELS_FILE}")):
        runs += 1
        labels += read_labels(labels_file)
        last = read_summary(labels_file.parent / SUMMARY_FILE).get("last_occurred_at")
        if last is not None:
            until = max(until or last, last)
    return Truth(labels, runs, until)


def format_scores(scores: dict[str, RuleScore]) -> str:
    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.3f}"

    header = (f"{'rule':<22} {'alerts':>7} {'true':>6} {'false':>6} {'planted':>8} {'missed':>7} "
              f"{'precision':>9} {'recall':>7}")
    lines = [header]
    for rule, s in scores.items():
        lines.append(f"{rule:<22} {s.alerts:>7} {s.true_alerts:>6} {s.false_alerts:>6} {s.positives:>8} "
                     f"{s.missed:>7} {pct(s.precision):>9} {pct(s.recall):>7}")
    return "\n".join(lines)


def stored_cep_alerts(conn, until_ms: int | None) -> tuple[list[dict], int]:
    """The CEP alerts in `security_alerts` whose evidence ends by `until_ms` (what the truth files cover),
    and how many later ones were left out for now."""
    rows = conn.execute(
        "SELECT alert_id, rule, user_id, ip, (extract(epoch FROM window_end) * 1000)::bigint "
        "FROM security_alerts WHERE source = 'flink_cep'"
    ).fetchall()
    alerts = [{"alert_id": a, "rule": r, "user_id": u, "ip": i, "window_end_ms": w} for a, r, u, i, w in rows]
    if until_ms is None:
        return [], len(alerts)
    covered = [a for a in alerts if a["window_end_ms"] is not None and a["window_end_ms"] <= until_ms]
    return covered, len(alerts) - len(covered)
