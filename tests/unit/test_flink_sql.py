"""The CEP job's SQL, settings and checkpoint handling, without Flink: the generated statements follow the
thresholds and the ordering mode, alert ids agree with contract.alerts, the loader maps alerts to rows.

Running the SQL is the integration tests' job (tests/integration/test_flink_cep.py)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract.alerts import ALERT_FIELDS, alert_id
from contract.detection import (
    ENV_VARS,
    RULE_ACCOUNT_TAKEOVER,
    RULE_BRUTE_FORCE,
    RULE_CREDENTIAL_STUFFING,
    RULE_IMPOSSIBLE_TRAVEL,
    RULE_RAPID_ACTIVITY,
    RULE_SEVERITY,
    DetectionThresholds,
)
from flink_cep.checkpoints import latest_checkpoint, prune_job_dirs
from flink_cep.settings import ALL_RULES, PROCTIME, ROWTIME, JobSettings, SettingsError
from flink_cep.sql import (
    SINK_COLUMNS,
    alert_id_expr,
    insert_sql,
    job_statements,
    job_version,
    rules,
)

pytestmark = pytest.mark.unit

DEFAULTS = DetectionThresholds()
CUSTOM = DetectionThresholds(
    brute_force_min_failures=7,
    brute_force_window_s=90,
    takeover_success_within_s=450,
    rapid_activity_max_events=25,
    rapid_activity_window_s=4,
    impossible_travel_max_kmh=850.5,
    impossible_travel_min_km=120.0,
    credential_stuffing_min_users=11,
    credential_stuffing_window_s=200,
)


def settings(**overrides) -> JobSettings:
    return JobSettings(**{"bootstrap_servers": "kafka:9092", **overrides})


def rule_sql(t: DetectionThresholds, name: str, s: JobSettings | None = None) -> str:
    return next(r.detect_sql for r in rules(t, s or settings()) if r.name == name)


def squash(sql: str) -> str:
    return re.sub(r"\s+", " ", sql)


@pytest.mark.parametrize("t", [DEFAULTS, CUSTOM], ids=["defaults", "custom"])
def test_each_rule_compiles_its_thresholds(t: DetectionThresholds):
    bf = squash(rule_sql(t, RULE_BRUTE_FORCE))
    assert f"PATTERN (F{{{t.brute_force_min_failures}}})" in bf
    assert f"MAX(F.occurred_at) - MIN(F.occurred_at) <= {t.brute_force_window_s * 1000}" in bf

    ato = squash(rule_sql(t, RULE_ACCOUNT_TAKEOVER))
    assert f"PATTERN (F{{{t.brute_force_min_failures},}} S)" in ato
    assert f"<= {t.brute_force_window_s * 1000}" in ato
    assert f"S.occurred_at - MAX(F.occurred_at) BETWEEN 0 AND {t.takeover_success_within_s * 1000}" in ato

    rapid = squash(rule_sql(t, RULE_RAPID_ACTIVITY))
    # the window holds the last M+2 events: the newest M+1 and the one before them
    assert f"ROWS BETWEEN {t.rapid_activity_max_events + 1} PRECEDING AND CURRENT ROW" in rapid
    assert f"{t.rapid_activity_max_events + 1} AS event_count" in rapid
    assert f"WHERE enough AND window_end - window_start <= {t.rapid_activity_window_s * 1000} AND NOT previous_burst" in rapid

    travel = squash(rule_sql(t, RULE_IMPOSSIBLE_TRAVEL))
    assert f"> {float(t.impossible_travel_min_km)} AND" in travel
    assert f"* 3600000 > {float(t.impossible_travel_max_kmh)} * ABS(B.occurred_at - A.occurred_at)" in travel

    stuffing = squash(rule_sql(t, RULE_CREDENTIAL_STUFFING))
    assert f"PATTERN (F{{{t.credential_stuffing_min_users}}})" in stuffing
    assert f"MAX(F.occurred_at) - MIN(F.occurred_at) <= {t.credential_stuffing_window_s * 1000}" in stuffing
    assert "PARTITION BY ip" in stuffing


def test_thresholds_come_from_the_environment():
    env = {ENV_VARS["brute_force_min_failures"]: "9", ENV_VARS["impossible_travel_max_kmh"]: "777.5"}
    t = DetectionThresholds.from_env(env)
    assert "PATTERN (F{9})" in rule_sql(t, RULE_BRUTE_FORCE)
    assert "> 777.5 * ABS(" in squash(rule_sql(t, RULE_IMPOSSIBLE_TRAVEL))


def test_every_time_condition_is_on_occurred_at_and_ordering_follows_the_mode():
    proc = squash(";".join(job_statements(DEFAULTS, settings(time_mode=PROCTIME))))
    assert "WATERMARK" not in proc and "WITHIN" not in proc
    assert "ORDER BY broker_ts" not in proc
    assert proc.count("ORDER BY pt") == 5  # five rules, one ordering each

    row = squash(";".join(job_statements(DEFAULTS, settings(time_mode=ROWTIME))))
    assert "WATERMARK FOR broker_ts AS broker_ts - INTERVAL '0.001' SECOND" in row
    assert "ORDER BY pt" not in row and row.count("ORDER BY broker_ts") == 5
    assert row.count("WITHIN INTERVAL") == 4  # every MATCH_RECOGNIZE bounds its state in event time


def test_one_insert_unions_every_rule_with_its_severity_into_the_sink_shape():
    sql = insert_sql(DEFAULTS, settings())
    assert sql.startswith("INSERT INTO security_alerts_sink")
    assert sql.count("UNION ALL") == len(ALL_RULES) - 1
    for rule, severity in RULE_SEVERITY.items():
        assert f"'{rule}' AS rule,\n  '{severity}' AS severity" in sql
    assert [name for name, _ in SINK_COLUMNS] == list(ALERT_FIELDS)


def test_rules_can_be_selected():
    s = JobSettings.from_env({"FLINK_CEP_RULES": "brute_force, impossible_travel"})
    sql = insert_sql(DEFAULTS, s)
    assert "'brute_force' AS rule" in sql and "'impossible_travel' AS rule" in sql
    assert "'rapid_activity' AS rule" not in sql and sql.count("UNION ALL") == 1
    with pytest.raises(SettingsError, match="unknown rules"):
        JobSettings.from_env({"FLINK_CEP_RULES": "brute_force,nope"})


def test_sinks_and_sources_are_low_latency_and_at_least_once():
    source, sink = job_statements(DEFAULTS, settings())[:2]
    assert "'scan.startup.mode' = 'group-offsets'" in source
    assert "'properties.auto.offset.reset' = 'earliest'" in source
    assert "'json.ignore-parse-errors' = 'true'" in source
    assert "'sink.delivery-guarantee' = 'at-least-once'" in sink
    assert "'properties.linger.ms' = '0'" in sink
    assert "'key.fields' = 'alert_id'" in sink


def test_job_version_tracks_state_layout_not_endpoints():
    base = job_version(DEFAULTS, settings())
    assert job_version(DEFAULTS, settings(bootstrap_servers="elsewhere:9092")) == base
    assert job_version(CUSTOM, settings()) != base
    assert job_version(DEFAULTS, settings(time_mode=ROWTIME)) != base


def test_alert_id_sql_is_md5_of_rule_subject_and_ordered_ids():
    assert alert_id_expr("brute_force", "user_id", "ids") == "MD5(CONCAT_WS('|', 'brute_force', user_id, ids))"
    # Flink 2.2.1 evaluated SELECT MD5(CONCAT_WS('|', 'brute_force', 'u-1', 'e1,e2')) to this value
    assert alert_id("brute_force", "u-1", ["e1", "e2"]) == "8f226941888a4bf81a4337939c833e1b"


def test_evidence_sort_key_orders_by_occurred_at_then_event_id():
    """The SQL sorts '<occurred_at padded to 15 digits>~<event_id>' strings; that must be event order."""
    events = [(1_764_000_000_500, "b"), (1_764_000_000_100, "z"), (1_764_000_000_500, "a"), (999, "c")]
    keys = sorted(f"{ts:015d}~{eid}" for ts, eid in events)
    assert [k.split("~")[1] for k in keys] == [eid for _, eid in sorted(events)]


def test_settings_defaults_and_errors(tmp_path: Path):
    s = JobSettings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    assert (s.parallelism, s.checkpoint_interval_s, s.time_mode) == (2, 30, PROCTIME)
    assert s.checkpoint_dir == tmp_path / "flink" / "checkpoints"
    assert s.rest_url == "http://127.0.0.1:8081" and s.jobmanager is None
    remote = JobSettings.from_env({"FLINK_JOBMANAGER": "jm.example:8081", "FLINK_PARALLELISM": "4"})
    assert remote.rest_url == "http://jm.example:8081" and remote.parallelism == 4
    with pytest.raises(SettingsError, match="FLINK_CEP_TIME"):
        JobSettings.from_env({"FLINK_CEP_TIME": "eventtime"})
    with pytest.raises(SettingsError, match="FLINK_PARALLELISM"):
        JobSettings.from_env({"FLINK_PARALLELISM": "0"})


def test_flink_config_checkpoints_restore_and_targets(tmp_path: Path):
    from flink_cep.job import flink_config

    restore = tmp_path / "v1" / "job-a" / "chk-7"
    local = flink_config(settings(rest_port=18081, checkpoint_interval_s=12), tmp_path / "v1", restore)
    assert local["execution.checkpointing.interval"] == "12 s"
    assert local["execution.checkpointing.dir"] == (tmp_path / "v1").as_uri()
    assert local["execution.state-recovery.path"] == restore.as_uri()
    assert local["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert (local["execution.target"], local["rest.port"]) == ("local", "18081")
    assert local["pipeline.jars"].startswith("file:") and "flink-sql-connector-kafka" in local["pipeline.jars"]
    remote = flink_config(settings(jobmanager="10.0.0.5:8081"), tmp_path / "v1", None)
    assert (remote["execution.target"], remote["rest.address"], remote["rest.port"]) == ("remote", "10.0.0.5", "8081")
    assert "execution.state-recovery.path" not in remote


def _checkpoint(root: Path, job: str, n: int, complete: bool = True, age_s: float = 0) -> Path:
    chk = root / job / f"chk-{n}"
    chk.mkdir(parents=True)
    if complete:
        (chk / "_metadata").write_bytes(b"x")
        stamp = time.time() - age_s
        os.utime(chk / "_metadata", (stamp, stamp))
    return chk


def test_latest_complete_checkpoint_is_restored_and_older_runs_pruned(tmp_path: Path):
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, "job-old", 40, age_s=100)
    newest = _checkpoint(tmp_path, "job-new", 3, age_s=10)
    _checkpoint(tmp_path, "job-new", 4, complete=False)  # in progress when the process died
    assert latest_checkpoint(tmp_path) == newest
    prune_job_dirs(tmp_path, newest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-new"]


def test_loader_maps_an_alert_to_a_row_and_rejects_garbage():
    pytest.importorskip("psycopg")
    from alerts.loader import COLUMNS, InvalidAlert, alert_row

    alert = {
        "alert_id": "abc", "rule": "brute_force", "severity": "HIGH", "source": "flink_cep",
        "user_id": "u-1", "ip": "185.0.0.1", "window_start": 1_764_000_000_000, "window_end": 1_764_000_030_000,
        "event_count": 5, "evidence_event_ids": ["e1", "e2"], "trigger_event_id": "e2",
        "trigger_event_ts": 1_764_000_030_012, "detected_at": 1_764_000_030_100, "details": {"failures": "5"},
    }
    row = dict(zip(COLUMNS, alert_row(json.dumps(alert).encode()), strict=True))
    assert row["window_start"] == datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    assert row["evidence_event_ids"] == ["e1", "e2"] and row["details"].obj == {"failures": "5"}
    for bad in (b"not json", b"[]", json.dumps({**alert, "severity": "SEVERE"}).encode(),
                json.dumps({**alert, "detected_at": "yesterday"}).encode(),
                json.dumps({k: v for k, v in alert.items() if k != "alert_id"}).encode()):
        with pytest.raises(InvalidAlert):
            alert_row(bad)
