"""Silver, features, SQL models and quality gates end to end, on real Kafka, Spark Connect, Delta,
PostgreSQL and a Dagster instance: a simulated-clock run of seven days landed in a few minutes of broker
time, late events and cross-window duplicates planted after it, the silver refresh found from what bronze
landed, features checked against an independent pandas computation, point-in-time correctness, a bad
batch stopped by its gate, and a multi-window bronze backfill that reconciles."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import psycopg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from analytics_defs.constants import (
    BRONZE_QUARANTINE_TABLE,
    BRONZE_USER_EVENTS,
    BRONZE_USER_EVENTS_TABLE,
    OUTSIDE_EVENT_DAYS_METADATA,
    SILVER_USER_EVENTS_TABLE,
    USER_FEATURES_TABLE,
)
from analytics_defs.partitions import WINDOW_MS, first_event_day
from assets.bronze import WITHIN_EVENT_DAYS, bronze_landing
from assets.features import user_features
from assets.reconciliation import reconcile
from assets.silver import silver_user_events
from contract.topics import USER_EVENTS
from contract.user_events import UserEvent
from ml.features import FEATURES
from simulator import Simulator, SimulatorConfig
from tests.lakehouse_flow import Lakehouse, produce, wait_until_closed

pytestmark = pytest.mark.integration

DAYS = 7


@pytest.fixture(scope="module")
def lakehouse(kafka_bootstrap, spark_remote, postgres_url, stack_root):
    return Lakehouse(kafka_bootstrap, spark_remote, postgres_url, stack_root / "warehouse-daily")


@pytest.fixture(scope="module")
def week(lakehouse, kafka_bootstrap):
    """Seven simulated days produced in a few seconds, then late events and cross-window duplicates."""
    now_ms = int(time.time() * 1000)
    start_ms = (now_ms // 86_400_000 - (DAYS - 1)) * 86_400_000 + 3_600_000  # 01:00 UTC six days ago
    sim = Simulator(SimulatorConfig(seed=5, clock="simulated", users=200, rate=0.15, malformed_rate=0.002,
                                    start_ms=start_ms, duration_s=(now_ms - 120_000 - start_ms) / 1000,
                                    scenario_rate=0.02))
    messages = [(m.key, m.value) for m in sim.events()]
    produce(kafka_bootstrap, messages)
    wait_until_closed()
    first = lakehouse.land_new_windows(now_ms)
    valid = [json.loads(v) for _, v in messages if _valid(v)]
    day2 = (datetime.fromtimestamp(start_ms / 1000, UTC) + timedelta(days=1)).date()
    late_user = valid[0]["user_id"]
    # late events of day 2, arriving now, and verbatim copies of day-3 events already landed
    late = [UserEvent(event_id=str(uuid.uuid4()), event_type="PAGE_VIEW", user_id=late_user,
                      occurred_at=int(datetime.combine(day2, datetime.min.time(), UTC).timestamp() * 1000) + 43_200_000 + i,
                      session_id="s-late", properties={"page": "/late"})
            for i in range(25)]
    day3 = (day2 + timedelta(days=1)).isoformat()
    copies = [(k, v) for k, v in messages if _valid(v) and _day(json.loads(v)) == day3][:40]
    # and a replay from before the first event day (conftest: 8 days back, no lookback): bronze only
    replayed_day = first_event_day - timedelta(days=2)
    replayed = [UserEvent(event_id=str(uuid.uuid4()), event_type="PAGE_VIEW", user_id=late_user,
                          occurred_at=int(datetime.combine(replayed_day, datetime.min.time(), UTC).timestamp() * 1000) + i,
                          session_id="s-replay", properties={"page": "/replay"})
                for i in range(3)]
    produce(kafka_bootstrap, [(e.key(), e.to_json()) for e in late + replayed] + copies)
    wait_until_closed()
    second = lakehouse.land_new_windows(now_ms)
    return {"start_ms": start_ms, "valid": valid, "late": late, "copies": copies, "day2": day2.isoformat(),
            "replayed": replayed, "replayed_day": replayed_day.isoformat(), "first_windows": first,
            "second_windows": second}


def _valid(value: bytes) -> bool:
    try:
        event = json.loads(value)
    except ValueError:
        return False
    return isinstance(event, dict) and isinstance(event.get("occurred_at"), int)


def _day(event: dict) -> str:
    return datetime.fromtimestamp(event["occurred_at"] / 1000, UTC).date().isoformat()


@pytest.fixture(scope="module")
def refreshed(lakehouse, week):
    """Every day the refresh sensor asks for, built with its features and SQL models."""
    days = lakehouse.refresh_requests()
    return {day: lakehouse.build_day(day) for day in days}


def _table(path: str, columns=None) -> pd.DataFrame:
    return DeltaTable(path).to_pandas(columns=columns)


# ------------------------------------------------------------------------------------------ silver
def test_seven_days_in_minutes_of_broker_time_end_in_seven_silver_days(lakehouse, week, refreshed):
    assert len(week["first_windows"]) <= 4  # minutes of broker time
    days = sorted(refreshed)
    assert len(days) == DAYS and days[-1] == datetime.now(UTC).date().isoformat()
    silver = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_id", "event_date"])
    assert sorted(silver["event_date"].astype(str).unique()) == days
    assert silver["event_id"].is_unique


def test_late_events_reach_their_day_and_duplicates_are_removed(lakehouse, week, refreshed):
    silver = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_id", "event_date", "session_id"])
    late_ids = {e.event_id for e in week["late"]}
    landed_late = silver[silver["event_id"].isin(late_ids)]
    assert len(landed_late) == len(late_ids) and set(landed_late["event_date"].astype(str)) == {week["day2"]}
    assert week["day2"] in refreshed  # the late day was refreshed from what bronze recorded
    copies = {json.loads(v)["event_id"] for _, v in week["copies"]}
    bronze = _table(lakehouse.path(BRONZE_USER_EVENTS_TABLE), ["event_id"])
    assert (bronze["event_id"].isin(copies)).sum() == 2 * len(copies)  # both copies landed in bronze
    assert (silver["event_id"].isin(copies)).sum() == len(copies)  # one each in silver


def test_silver_reconciles_with_bronze_per_day(lakehouse, refreshed):
    bronze = _table(lakehouse.path(BRONZE_USER_EVENTS_TABLE), ["event_id", "occurred_at_ts"])
    bronze["day"] = pd.to_datetime(bronze["occurred_at_ts"], utc=True).dt.date.astype(str)
    silver = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_date"])
    for day, result in refreshed.items():
        meta = result.asset_materializations_for_node("silver_user_events")[0].metadata
        in_bronze = bronze[bronze["day"] == day]
        assert meta["bronze_rows"].value == len(in_bronze)
        assert meta["silver_rows"].value == (silver["event_date"].astype(str) == day).sum() == in_bronze["event_id"].nunique()
        assert meta["bronze_rows"].value == meta["silver_rows"].value + meta["duplicates_removed"].value
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items() if not c.passed}
        assert {"reconciles_with_bronze", "great_expectations"} <= set(checks)


def test_rebuilding_a_day_gives_the_same_rows(lakehouse, refreshed):
    day = sorted(refreshed)[2]
    before = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_id", "event_date"])
    lakehouse.build_day(day, [silver_user_events])
    after = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_id", "event_date"])
    assert sorted(before["event_id"]) == sorted(after["event_id"])


# ---------------------------------------------------------------------------------------- features
def reference_features(silver: pd.DataFrame, day: date) -> pd.DataFrame:
    """The features of `day` computed here in pandas from their descriptions, apart from the Spark job."""
    window = silver[(silver["event_date"] >= day - timedelta(days=6)) & (silver["event_date"] <= day)].copy()
    window["t"] = pd.to_datetime(window["event_time"], utc=True)
    window = window.sort_values(["user_id", "t", "event_id"])
    window["hour"] = window["t"].dt.hour + window["t"].dt.minute / 60 + window["t"].dt.second / 3600
    window["is_day"] = window["event_date"] == day
    window["minute"] = window["t"].dt.floor("min")
    window["minute_count"] = window.groupby(["user_id", "minute"])["event_id"].transform("count")
    window["gap_s"] = window.groupby("user_id")["t"].diff().dt.total_seconds()
    window["amount"] = window["amount"].astype(float)
    rows = {}
    for user, ev in window.groupby("user_id"):
        types = ev["event_type"]
        angle = ev["hour"] * math.pi / 12
        s, c = math.fsum(angle.map(math.sin)) / len(ev), math.fsum(angle.map(math.cos)) / len(ev)
        r = math.hypot(s, c)
        day_ev = ev[ev["is_day"]]
        logins = types.isin(["LOGIN_FAILED", "LOGIN_SUCCESS"]).sum()
        purchases = ev[types == "PURCHASE"]
        row = {
            "events_7d": len(ev), "events_1d": len(day_ev),
            "sessions_7d": ev["session_id"].nunique(), "sessions_1d": day_ev["session_id"].nunique(),
            "active_days_7d": ev["event_date"].nunique(),
            "events_per_session_7d": len(ev) / max(ev["session_id"].nunique(), 1),
            "hour_mean_7d": (math.degrees(math.atan2(s, c)) / 15) % 24,
            "hour_spread_7d": math.sqrt(-2 * math.log(max(r, 1e-9))) * 12 / math.pi,
            "hour_sin_7d": s, "hour_cos_7d": c,
            "night_share_7d": (ev["hour"] < 6).mean(),
            "median_gap_s_7d": ev["gap_s"].dropna().median() if ev["gap_s"].notna().any() else 0.0,
            "peak_events_per_minute_7d": ev["minute_count"].max(),
            "peak_events_per_minute_1d": day_ev["minute_count"].max() if len(day_ev) else 0,
            "failed_login_ratio_7d": (types == "LOGIN_FAILED").sum() / max(logins, 1),
            "failed_logins_1d": (day_ev["event_type"] == "LOGIN_FAILED").sum(),
            "password_resets_7d": (types == "PASSWORD_RESET").sum(),
            "distinct_ips_7d": ev["ip"].nunique(), "distinct_ips_1d": day_ev["ip"].nunique(),
            "distinct_countries_7d": ev["country"].nunique(), "distinct_devices_7d": ev["device_id"].nunique(),
            "page_views_7d": (types == "PAGE_VIEW").sum(), "searches_7d": (types == "SEARCH").sum(),
            "cart_adds_7d": (types == "ADD_TO_CART").sum(), "purchases_7d": len(purchases),
            "purchases_1d": (day_ev["event_type"] == "PURCHASE").sum(),
            "purchase_amount_7d": purchases["amount"].fillna(0).sum(),
            "purchase_amount_1d": day_ev[day_ev["event_type"] == "PURCHASE"]["amount"].fillna(0).sum(),
            "cart_to_purchase_7d": len(purchases) / max((types == "ADD_TO_CART").sum(), 1),
        }
        located = ev[ev["lon"].notna()]
        local_angle = (located["hour"] * 15 + located["lon"]).map(math.radians)
        local_hour = (located["hour"] + located["lon"] / 15) % 24
        row["local_hour_sin_7d"] = local_angle.map(math.sin).mean() if len(located) else 0.0
        row["local_hour_cos_7d"] = local_angle.map(math.cos).mean() if len(located) else 0.0
        row["local_night_share_7d"] = (local_hour < 6).mean() if len(located) else 0.0
        for t in ("PAGE_VIEW", "SEARCH", "ADD_TO_CART", "PURCHASE", "LOGIN_FAILED", "PROFILE_UPDATE", "LOGOUT"):
            row[f"share_{t.lower()}_7d"] = (types == t).mean()
        rows[user] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def test_features_equal_an_independent_pandas_computation(lakehouse, refreshed):
    day = date.fromisoformat(sorted(refreshed)[-2])
    silver = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE))
    expected = reference_features(silver, day)
    features = _table(lakehouse.path(USER_FEATURES_TABLE))
    got = features[features["feature_date"] == day].set_index("user_id")
    assert sorted(got.index) == sorted(expected.index)  # one row per user active in the 7 days
    sample = sorted(expected.index)[:: max(1, len(expected) // 40)]
    assert {f.name for f in FEATURES} == set(expected.columns)
    for user in sample:
        for f in FEATURES:
            assert got.loc[user, f.name] == pytest.approx(float(expected.loc[user, f.name]), rel=1e-6, abs=1e-6), (user, f.name)


def test_an_event_of_the_next_day_changes_nothing_in_a_days_features(lakehouse, week, refreshed, kafka_bootstrap):
    days = sorted(refreshed)
    day, next_day = days[-3], days[-2]
    before = _table(lakehouse.path(USER_FEATURES_TABLE))
    before = before[before["feature_date"].astype(str) == day].sort_values("user_id").reset_index(drop=True)
    user = before["user_id"].iloc[0]
    when = int(datetime.fromisoformat(next_day).replace(tzinfo=UTC).timestamp() * 1000) + 3_600_000
    late = UserEvent(event_id=str(uuid.uuid4()), event_type="PURCHASE", user_id=user, occurred_at=when,
                     session_id="s-next", properties={"amount": "999.00", "currency": "EUR"})
    produce(kafka_bootstrap, [(late.key(), late.to_json())])
    wait_until_closed()
    lakehouse.land_new_windows(week["start_ms"])
    assert next_day in lakehouse.refresh_requests()
    lakehouse.build_day(next_day, [silver_user_events])
    lakehouse.build_day(day, [user_features])
    after = _table(lakehouse.path(USER_FEATURES_TABLE))
    after = after[after["feature_date"].astype(str) == day].sort_values("user_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_events_older_than_the_first_event_day_are_counted_and_shown_never_dropped_quietly(
        lakehouse, week, refreshed, postgres_url):
    """They land in bronze and reach no silver day: the landing's metadata and WARN check count them per
    date, events_outside_partitions holds them for the dashboard, and the check says how to bring them in."""
    day, n = week["replayed_day"], len(week["replayed"])
    ids = {e.event_id for e in week["replayed"]}
    assert len(_table(lakehouse.path(BRONZE_USER_EVENTS_TABLE), ["event_id"]).query("event_id in @ids")) == n
    assert not _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_id"])["event_id"].isin(ids).any()
    assert day not in refreshed
    records = lakehouse.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(BRONZE_USER_EVENTS, WITHIN_EVENT_DAYS), limit=500)
    evaluations = [r.event.dagster_event.event_specific_data for r in records if r.event and r.event.dagster_event]
    warned = [e for e in evaluations if hasattr(e, "passed") and not e.passed]
    assert len(warned) >= 1 and all(w.severity == dg.AssetCheckSeverity.WARN for w in warned)
    meta = warned[0].metadata
    assert meta[OUTSIDE_EVENT_DAYS_METADATA].value == {day: n} and meta["rows_outside"].value == n
    assert "LAKEHOUSE_EVENT_LOOKBACK_DAYS" in meta["bring_them_in"].value
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute("SELECT sum(rows) FROM events_outside_partitions WHERE event_date = %s", (day,)).fetchone()[0]
    assert stored == n


# -------------------------------------------------------------------------------------- SQL models
def test_sql_models_build_and_publish_their_day(lakehouse, refreshed, postgres_url):
    day = sorted(refreshed)[3]  # a day no other test of the module changes after it was built
    result = refreshed[day]
    for model in ("daily_activity", "conversion_funnel", "session_stats", "daily_kpis"):
        assert result.asset_materializations_for_node(model), model
    silver = _table(lakehouse.path(SILVER_USER_EVENTS_TABLE), ["event_date", "user_id", "event_type"])
    of_day = silver[silver["event_date"].astype(str) == day]
    with psycopg.connect(postgres_url) as conn:
        events, users, buyers = conn.execute(
            "SELECT events, active_users, buyers FROM daily_kpis WHERE event_date = %s", (day,)).fetchone()
    assert events == len(of_day) and users == of_day["user_id"].nunique()
    assert buyers == of_day[of_day["event_type"] == "PURCHASE"]["user_id"].nunique()


# ----------------------------------------------------------------------------------- quality gates
def test_a_bad_batch_fails_the_gate_and_blocks_the_features(lakehouse, refreshed, spark):
    day = sorted(refreshed)[1]
    bronze = lakehouse.path(BRONZE_USER_EVENTS_TABLE)
    # a row that bypassed landing's validation (an unknown event type), written straight into bronze
    bad = spark.read.format("delta").load(bronze).where(f"to_date(occurred_at_ts) = DATE '{day}'").limit(1)
    bad.selectExpr("uuid() AS event_id", "'TELEPORT' AS event_type",
                   *[c for c in bad.columns if c not in ("event_id", "event_type")]).write.format("delta").mode(
        "append").save(bronze)
    before = lakehouse.instance.get_latest_materialization_event(dg.AssetKey("user_features"))
    result = lakehouse.build_day(day, [silver_user_events, user_features], raise_on_error=False)
    assert not result.success
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == "great_expectations")
    assert not gate.passed
    failed = gate.metadata["failed"].value
    assert any("event_type" in f["expectation"] and f.get("unexpected_count") == 1 for f in failed), failed
    assert result.asset_materializations_for_node("user_features") == []
    after = lakehouse.instance.get_latest_materialization_event(dg.AssetKey("user_features"))
    assert (before.run_id, before.timestamp) == (after.run_id, after.timestamp)  # features not rebuilt on the bad day


# ------------------------------------------------------------------------------------ bronze backfill
def test_multi_window_backfill_lands_in_one_run_and_reconciles(lakehouse, week):
    keys = week["first_windows"] + week["second_windows"]
    first, last = min(keys), max(keys)
    result = dg.materialize([bronze_landing], resources=lakehouse.resources, instance=lakehouse.instance,
                            tags={"dagster/asset_partition_range_start": first,
                                  "dagster/asset_partition_range_end": last})
    assert result.success
    meta = result.asset_materializations_for_node("bronze_landing")[0].metadata
    assert meta["windows"].value >= len(set(keys))
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert all(c.passed for name, c in checks.items() if name != WITHIN_EVENT_DAYS)
    # the range holds the window of the replayed events: the WARN check names them again, nothing blocks
    assert not checks[WITHIN_EVENT_DAYS].passed and checks[WITHIN_EVENT_DAYS].severity == dg.AssetCheckSeverity.WARN
    assert checks[WITHIN_EVENT_DAYS].metadata["rows_outside"].value == len(week["replayed"])
    start_ms = int(datetime.strptime(first, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC).timestamp() * 1000)
    end_ms = int(datetime.strptime(last, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC).timestamp() * 1000) + WINDOW_MS
    balances = reconcile(lakehouse.kafka, USER_EVENTS, lakehouse.path(BRONZE_USER_EVENTS_TABLE),
                         lakehouse.path(BRONZE_QUARANTINE_TABLE), start_ms, end_ms)
    assert balances and all(b.status == "ok" for b in balances), balances
    bronze = DeltaTable(lakehouse.path(BRONZE_USER_EVENTS_TABLE)).to_pyarrow_table(columns=["kafka_partition", "kafka_offset"])
    pairs = pc.add(pc.multiply(pc.cast(bronze["kafka_partition"], "int64"), 10**12), bronze["kafka_offset"])
    assert pc.count_distinct(pairs).as_py() == bronze.num_rows  # nothing landed twice
