"""Detection quality against the simulator's ground truth: per rule, how many planted scenarios raised
their alert (recall) and how many alerts a planted scenario explains (precision); for the ML rule
`behavior_anomaly`, the same per scored day against the drifting users.

Used by the CEP benchmarks on one run and by `lakehouse score-alerts` on the live stack, where the
truth is every run directory the simulator wrote under `<data dir>/simulator/` (one per start), read
together: a restart is just another run of the same population.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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


def _end_ms(day: date) -> int:
    return int(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC).timestamp() * 1000)


def drift_periods(labels: Iterable[Label]) -> dict[str, tuple[int, int]]:
    """Per drifting user, (drift start, end of its ramp) in ms: the earliest over every run's truth file
    (a restart continues the same population and writes the same drift again)."""
    periods: dict[str, tuple[int, int]] = {}
    for lb in labels:
        if lb.expected_rule != RULE_BEHAVIOR_ANOMALY or lb.user_id is None or "drift_start_ms" not in lb.details:
            continue
        start = int(lb.details["drift_start_ms"])
        period = (start, start + int(lb.details.get("ramp_ms", 0)))
        periods[lb.user_id] = min(periods.get(lb.user_id, period), period)
    return periods


def score_behavior_anomaly(labels: Iterable[Label], alerts: Iterable[dict],
                           scored_days: Iterable[date]) -> dict[date, RuleScore]:
    """Per scored day D, the behavior_anomaly alerts of D (one per user and day) against the drifting
    users: an alert is true when its user's drift started before D ended; planted are the users whose
    drift had fully ramped by the end of D (what a day's features can show), missed those of them
    without an alert on D."""
    periods = drift_periods(labels)
    alerted: dict[date, set[str]] = defaultdict(set)
    for alert in {a["alert_id"]: a for a in alerts}.values():
        if alert["rule"] == RULE_BEHAVIOR_ANOMALY and alert.get("scored_date") is not None:
            alerted[alert["scored_date"]].add(alert["user_id"])
    scores = {}
    for day in sorted(set(scored_days)):
        end = _end_ms(day)
        users = alerted.get(day, set())
        planted = {u for u, (_, ramped) in periods.items() if ramped <= end}
        s = RuleScore(positives=len(planted), found=len(planted & users), alerts=len(users),
                      true_alerts=sum(1 for u in users if u in periods and periods[u][0] < end))
        scores[day] = s
    return scores


def total(scores: Iterable[RuleScore]) -> RuleScore:
    out = RuleScore()
    for s in scores:
        out.positives += s.positives
        out.found += s.found
        out.controls += s.controls
        out.alerts += s.alerts
        out.true_alerts += s.true_alerts
    return out


def stored_ml_alerts(conn) -> tuple[list[dict], list[date]]:
    """The behavior_anomaly alerts in `security_alerts` with the day they were scored for (their evidence
    window ends with that day), and every day the anomaly champion scored."""
    rows = conn.execute(
        "SELECT alert_id, rule, user_id, ((window_end AT TIME ZONE 'UTC') - interval '1 millisecond')::date "
        "FROM security_alerts WHERE source = 'ml_anomaly'").fetchall()
    days = [d for (d,) in conn.execute("SELECT DISTINCT scored_date FROM user_anomaly_scores ORDER BY 1").fetchall()]
    return [{"alert_id": a, "rule": r, "user_id": u, "scored_date": d} for a, r, u, d in rows], days


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


def format_scores(scores: dict, first: str = "rule") -> str:
    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.3f}"

    header = (f"{first:<22} {'alerts':>7} {'true':>6} {'false':>6} {'planted':>8} {'missed':>7} "
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
