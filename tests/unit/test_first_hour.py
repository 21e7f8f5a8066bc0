"""The first hour of a deployment: when the models train by themselves, how eligibility and trust follow
the history there is, which late events silver has no day for, and how behavior_anomaly alerts are scored
against the drifting users."""

from datetime import UTC, date, datetime, timedelta

import pytest

from alerts.scoring import drift_periods, score_behavior_anomaly, total
from analytics_defs.partitions import outside_event_days
from ml.defaults import DEFAULT_ELIGIBILITY, trusted
from sensors.model_training import LATENESS, end_of, plan_training
from simulator.truth import RULE_BEHAVIOR_ANOMALY, Label

pytestmark = pytest.mark.unit

D1, D2 = date(2026, 12, 1), date(2026, 12, 2)
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_the_oldest_final_closed_day_without_a_run_is_trained_first():
    final = {D1: NOW - timedelta(minutes=5), D2: NOW - timedelta(minutes=1)}
    assert plan_training(NOW, final, {}, None).day == D1
    assert plan_training(NOW, final, {D1: "success"}, None).day == D2
    assert plan_training(NOW, final, {D1: "failure"}, None).day == D2  # a failed day is not repeated
    done = plan_training(NOW, final, {D1: "success", D2: "success"}, None)
    assert done.day is None and "every recent closed day" in done.reason


def test_nothing_is_requested_while_a_training_runs_or_before_a_day_is_final():
    final = {D1: NOW, D2: NOW}
    assert plan_training(NOW, final, {}, "2026-12-01").day is None
    # yesterday's features built before the nightly close (00:30): not final yet, and the reason says when
    early = datetime(2026, 12, 3, 0, 30, tzinfo=UTC)
    plan = plan_training(early, {D2: early}, {}, None)
    assert plan.day is None and f"{end_of(D2) + LATENESS:%Y-%m-%d %H:%M}" in plan.reason
    assert plan_training(NOW, {D1: None, D2: None}, {}, None).reason.count("not built yet") == 2
    assert plan_training(NOW, {}, {}, None).reason == "no closed day of features yet"


def test_eligibility_asks_for_no_more_active_days_than_there_are_and_trust_needs_a_whole_window():
    assert DEFAULT_ELIGIBILITY.for_history(0.4).min_active_days_7d == 1
    assert DEFAULT_ELIGIBILITY.for_history(1.0).min_active_days_7d == 1
    assert DEFAULT_ELIGIBILITY.for_history(7.0) == DEFAULT_ELIGIBILITY
    assert DEFAULT_ELIGIBILITY.for_history(1.5).min_events_7d == DEFAULT_ELIGIBILITY.min_events_7d
    assert not trusted(3.0) and not trusted(6.9) and trusted(7 - 1 / 48) and trusted(7.0)


def test_only_dates_before_the_first_event_day_are_outside():
    dates = {"2026-11-18": 4, "2026-11-19": 2, "2026-11-20": 10, "2026-12-03": 7}
    assert outside_event_days(dates, date(2026, 11, 20)) == {"2026-11-18": 4, "2026-11-19": 2}
    assert outside_event_days(dates, date(2026, 11, 1)) == {}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _drift(user: str, start: datetime, ramp: timedelta) -> Label:
    return Label(f"drift-{user}", "drift", user, None, RULE_BEHAVIOR_ANOMALY, True, complete=True,
                 details={"drift": "night_shift", "drift_start_ms": str(_ms(start)),
                          "ramp_ms": str(int(ramp.total_seconds() * 1000))})


def _alert(user: str, day: date) -> dict:
    return {"alert_id": f"{user}:{day}", "rule": RULE_BEHAVIOR_ANOMALY, "user_id": user, "scored_date": day}


def test_behavior_anomaly_is_scored_per_day_against_the_drifts_under_way():
    ramp = timedelta(hours=12)
    labels = [
        _drift("early", datetime(2026, 11, 30, 0, tzinfo=UTC), ramp),  # ramped by the end of D1
        _drift("late", datetime(2026, 12, 1, 20, tzinfo=UTC), ramp),  # started in D1, ramped in D2
        _drift("late", datetime(2026, 12, 1, 20, tzinfo=UTC), ramp),  # the same drift in the next run's truth
        _drift("future", datetime(2026, 12, 5, tzinfo=UTC), ramp),  # drifts after both days
        Label("bf-1", "brute_force", "s-1", "203.0.113.7", "brute_force", True, complete=True),
    ]
    assert set(drift_periods(labels)) == {"early", "late", "future"}
    alerts = [_alert("early", D1), _alert("late", D1), _alert("future", D1), _alert("bob", D1),
              _alert("early", D2), _alert("early", D2)]  # the same alert stored once
    by_day = score_behavior_anomaly(labels, alerts, [D1, D2])
    one, two = by_day[D1], by_day[D2]
    assert (one.alerts, one.true_alerts, one.positives, one.found) == (4, 2, 1, 1)
    assert (two.alerts, two.true_alerts, two.positives, two.found, two.missed) == (1, 1, 2, 1, 1)
    both = total(by_day.values())
    assert (both.alerts, both.true_alerts, both.positives, both.found) == (5, 3, 3, 2)
    assert both.precision == pytest.approx(0.6) and both.recall == pytest.approx(2 / 3)
    assert score_behavior_anomaly(labels, [], []) == {}
