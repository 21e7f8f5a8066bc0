"""Planning the silver refresh: which event days to rebuild, and the limits that keep runs from piling up."""

import pytest

from sensors.silver_refresh import RefreshCursor, plan_refreshes

pytestmark = pytest.mark.unit

VALID = {f"2026-11-{d:02d}" for d in range(1, 27)}


def test_new_dates_are_requested_oldest_first_up_to_the_limit():
    plan = plan_refreshes({"2026-11-26", "2026-11-20", "2026-11-25"}, VALID, set(), {}, now=1000, interval_s=300,
                          max_requests=2)
    assert plan.requests == ["2026-11-20", "2026-11-25"] and plan.waiting == ["2026-11-26"]


def test_a_date_in_flight_or_refreshed_recently_waits_and_is_kept():
    plan = plan_refreshes({"2026-11-25", "2026-11-26"}, VALID, {"2026-11-25"}, {"2026-11-26": 900}, now=1000,
                          interval_s=300)
    assert plan.requests == [] and plan.waiting == ["2026-11-25", "2026-11-26"]
    later = plan_refreshes(set(plan.waiting), VALID, set(), {"2026-11-26": 900}, now=1201, interval_s=300)
    assert later.requests == ["2026-11-25", "2026-11-26"]


def test_dates_outside_the_partitions_are_dropped_and_reported():
    plan = plan_refreshes({"1999-01-01", "2026-11-26"}, VALID, set(), {}, now=0, interval_s=300)
    assert plan.dropped == ["1999-01-01"] and plan.requests == ["2026-11-26"]


def test_cursor_round_trips():
    cursor = RefreshCursor(after_storage_id=42, pending=["2026-11-26"], requested_at={"2026-11-25": 1.5})
    assert RefreshCursor.parse(cursor.dump()) == cursor
    assert RefreshCursor.parse(None) == RefreshCursor()


def test_landing_gaps_are_failed_windows_not_landed_since_and_not_running():
    from sensors.landing_gaps import gaps

    failed = {"2026-11-26-10:03": "r3", "2026-11-26-10:01": "r1", "2026-11-26-10:02": "r2", "2026-11-26-10:04": "r4"}
    todo = gaps(failed, landed={"2026-11-26-10:02"}, in_flight={"2026-11-26-10:03"}, limit=5)
    assert todo == [("2026-11-26-10:01", "r1"), ("2026-11-26-10:04", "r4")]
    assert gaps(failed, set(), set(), limit=1) == [("2026-11-26-10:01", "r1")]


def test_landing_gaps_sensor_requests_a_failed_window_once_against_a_real_instance():
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun

    from analytics_defs.constants import BRONZE_LANDING_JOB
    from sensors.landing_gaps import landing_gaps_sensor

    with dg.instance_for_test() as instance:
        for run_id, window, status in (("r1", "2026-11-26-10:01", dg.DagsterRunStatus.FAILURE),
                                       ("r2", "2026-11-26-10:02", dg.DagsterRunStatus.STARTED)):
            instance.add_run(DagsterRun(job_name=BRONZE_LANDING_JOB, run_id=run_id, status=status,
                                        tags={"dagster/partition": window}))
        with dg.build_sensor_context(instance=instance) as context:
            result = landing_gaps_sensor(context)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("2026-11-26-10:01", "2026-11-26-10:01:after:r1")]


def test_a_landing_backlog_holds_the_days_before_today():
    """History or a replay still landing: the older days would be rebuilt once per window; they wait, today not."""
    plan = plan_refreshes({"2026-11-20", "2026-11-26"}, VALID, set(), {}, now=1000, interval_s=300,
                          backlog_before="2026-11-26")
    assert plan.requests == ["2026-11-26"] and plan.waiting == ["2026-11-20"]
    assert plan_refreshes({"2026-11-20"}, VALID, set(), {}, now=1000, interval_s=300).requests == ["2026-11-20"]
