"""The dashboard's HTTP API against a real dashboard process, real PostgreSQL and Kafka: "none yet" before
anything exists, each endpoint with data in place, filters and paging, bad input, a component that is down,
the read-only role, the token guard, and an alert pushed on the stream."""

import json
import os
import stat
import time

import psycopg
import pytest
import requests

from tests import dashboard_data as data
from tests.conftest import DASHBOARD_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(dashboard_seeded: dict, dashboard_url: str) -> dict:
    return dashboard_seeded


def get(url: str, **params) -> requests.Response:
    return requests.get(url, params=params, timeout=30)


def test_before_anything_exists_every_part_says_none_yet_and_a_down_component_says_so(empty_dashboard_url):
    page = get(f"{empty_dashboard_url}/api/alerts").json()
    assert page == {"status": "none_yet", "alerts": [], "next_cursor": None}
    segments = get(f"{empty_dashboard_url}/api/segments").json()
    assert segments["status"] == "none_yet" and "no segmentation model" in segments["message"]
    metrics = get(f"{empty_dashboard_url}/api/metrics")
    assert metrics.status_code == 200
    body = metrics.json()
    assert body["landing"]["status"] == "none_yet" and body["quarantine"]["status"] == "none_yet"
    assert body["alerts"]["status"] == "none_yet"
    assert body["events"]["status"] == "unavailable" and "Kafka" in body["events"]["message"]
    assert body["consumer_lag"]["status"] == "unavailable"
    kafka = get(f"{empty_dashboard_url}/api/kafka").json()
    assert kafka["status"] == "unavailable"
    health = get(f"{empty_dashboard_url}/api/health")
    assert health.status_code == 503
    states = {c["name"]: c["state"] for c in health.json()["components"]}
    assert states["postgres"] == "healthy" and states["kafka"] != "healthy"
    spark = get(f"{empty_dashboard_url}/api/spark-metrics").json()
    assert spark["spark"]["status"] == "unavailable" and spark["landing_runs"]["status"] == "unavailable"
    page = get(f"{empty_dashboard_url}/")
    assert page.status_code == 200 and "Security alerts" in page.text


def test_test_traffic_is_refused_when_no_token_is_configured(empty_dashboard_url):
    options = get(f"{empty_dashboard_url}/api/generate-test-data").json()
    assert options["enabled"] is False
    refused = requests.post(f"{empty_dashboard_url}/api/generate-test-data", json={"kind": "burst", "events": 10},
                            headers={"Authorization": "Bearer anything"}, timeout=10)
    assert refused.status_code == 403 and "DASHBOARD_TOKEN" in refused.json()["detail"]


def test_metrics_with_data_in_place(dashboard_url, seeded):
    body = get(f"{dashboard_url}/api/metrics").json()
    events = body["events"]
    assert events["status"] == "ok" and events["total_offsets"] >= 500 and len(events["series"]) == 30
    assert events["events_last_minute"] >= 500
    assert sum(p["events_per_second"] for p in events["series"]) * 10 >= 500
    landing = body["landing"]
    assert landing["status"] == "ok" and len(landing["windows"]) == 10
    assert landing["windows"][0]["window_start"] > landing["windows"][-1]["window_start"]
    assert landing["windows"][0]["freshness_seconds"] == 49.0
    quarantine = body["quarantine"]
    assert quarantine["status"] == "ok" and quarantine["rows_in"] == 120_000 and quarantine["rows_quarantined"] == 120
    assert [(r["reason"], r["rows"]) for r in quarantine["reasons"]] == [
        ("invalid_json", 6), ("missing_field:user_id", 3), ("future_timestamp", 1)]
    alerts = body["alerts"]
    assert alerts["status"] == "ok" and alerts["total"] >= 120
    by_rule = {(c["rule"], c["severity"]): c["count"] for c in alerts["counts"]}
    assert by_rule[("brute_force", "HIGH")] >= 30 and by_rule[("account_takeover", "CRITICAL")] >= 30
    lag = {g["role"]: g for g in body["consumer_lag"]["groups"]}
    assert lag["alert loader"]["lag"] >= 1 and lag["alert loader"]["topic"] == "security-alerts"


def test_alerts_filter_and_page_with_a_cursor(dashboard_url, seeded):
    first = get(f"{dashboard_url}/api/alerts", limit=50).json()
    assert first["status"] == "ok" and len(first["alerts"]) == 50 and first["next_cursor"]
    times = [a["detected_at"] for a in first["alerts"]]
    assert times == sorted(times, reverse=True)
    seen, cursor, pages = {a["alert_id"] for a in first["alerts"]}, first["next_cursor"], 1
    while cursor:
        page = get(f"{dashboard_url}/api/alerts", limit=50, cursor=cursor).json()
        assert not seen & {a["alert_id"] for a in page["alerts"]}
        seen |= {a["alert_id"] for a in page["alerts"]}
        cursor, pages = page["next_cursor"], pages + 1
    assert {r[0] for r in seeded["alerts"]} <= seen and pages >= 3
    takeovers = get(f"{dashboard_url}/api/alerts", rule="account_takeover", limit=500).json()["alerts"]
    assert takeovers and {a["rule"] for a in takeovers} == {"account_takeover"}
    assert {a["severity"] for a in get(f"{dashboard_url}/api/alerts", severity="MEDIUM").json()["alerts"]} == {"MEDIUM"}
    assert get(f"{dashboard_url}/api/alerts", source="ml").json() == {"status": "ok", "alerts": [], "next_cursor": None}
    assert len(get(f"{dashboard_url}/api/alerts", source="cep", limit=5).json()["alerts"]) == 5
    user = get(f"{dashboard_url}/api/alerts", user_id="u-000003").json()["alerts"]
    assert len(user) == 10 and {a["user_id"] for a in user} == {"u-000003"}
    newest = seeded["alerts"][0][12]
    window = get(f"{dashboard_url}/api/alerts", since=(newest.replace(microsecond=0)).isoformat(),
                 until="2100-01-01T00:00:00Z").json()["alerts"]
    assert window and all(a["detected_at"] >= newest.replace(microsecond=0).isoformat() for a in window)


@pytest.mark.parametrize("params, where", [
    ({"severity": "SEVERE"}, "severity"),
    ({"source": "flink"}, "source"),
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ({"rule": "brute force; drop table"}, "rule"),
    ({"user_id": "u\x00"}, "user_id"),
])
def test_a_bad_filter_is_a_422_that_says_what_is_wrong(dashboard_url, params, where):
    response = get(f"{dashboard_url}/api/alerts", **params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(where in d["loc"] and d["msg"] for d in detail), detail


def test_kafka_segments_and_spark_metrics(dashboard_url, seeded):
    kafka = get(f"{dashboard_url}/api/kafka").json()
    topics = {t["name"]: t for t in kafka["topics"]}
    assert {"user-events", "security-alerts", "notifications", "analytics-insights"} <= set(topics)
    assert topics["user-events"]["messages"] >= 500
    groups = {g["group"]: g for g in kafka["consumer_groups"]}
    assert groups["security-alerts-loader"]["partitions"][0]["committed"] == 0
    segments = get(f"{dashboard_url}/api/segments").json()
    assert segments["status"] == "ok" and segments["model_name"] == "user_segmentation"
    assert segments["model_version"] == "3" and segments["users"] == 100
    assert [s["users"] for s in segments["segments"]] == [25, 25, 25, 25]
    assert {m["metric"] for m in segments["model_metrics"]} == {"silhouette", "inertia"}
    assert segments["champion_version"] is None  # no MLflow in this test: said in the message
    spark = get(f"{dashboard_url}/api/spark-metrics").json()
    assert spark["spark"]["status"] == "unavailable" and spark["spark"]["ui_url"].startswith("http://")


def test_health_names_every_component_and_answers_503_while_required_ones_are_down(dashboard_url):
    response = get(f"{dashboard_url}/api/health")
    assert response.status_code == 503
    body = response.json()
    components = {c["name"]: c for c in body["components"]}
    assert {"postgres", "kafka", "flink-cep", "alert-loader", "spark-connect", "mlflow", "dagster-webserver",
            "dagster-daemon"} <= set(components)
    assert components["postgres"]["state"] == "healthy" and components["kafka"]["state"] == "healthy"
    assert components["postgres"]["detail"].startswith("running (pid ")
    assert components["spark-connect"]["state"] == "stopped" and components["mlflow"]["state"] == "stopped"
    assert body["status"] == "unhealthy"


def test_the_dashboard_reads_with_a_read_only_role(dashboard_cfg, dashboard_writer_url):
    url = dashboard_cfg.dashboard_db_url
    assert "lakehouse_dashboard" in url and url != dashboard_writer_url
    mode = stat.S_IMODE(os.stat(dashboard_cfg.dashboard_db_password_file).st_mode)
    assert mode == 0o600
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM security_alerts").fetchone()[0] >= 0
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM security_alerts")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM security_alerts")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE t (x int)")


def test_token_guard(dashboard_url, kafka_bootstrap):
    url = f"{dashboard_url}/api/generate-test-data"
    burst = {"kind": "burst", "events": 40, "rate": 200}
    missing = requests.post(url, json=burst, timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = requests.post(url, json=burst, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 401
    too_big = requests.post(url, json={**burst, "events": 10**6}, timeout=10,
                            headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    assert too_big.status_code == 422
    from resources.kafka import KafkaResource

    before = sum(h for _, h in KafkaResource(bootstrap_servers=kafka_bootstrap).watermarks("user-events").values())
    right = requests.post(url, json=burst, headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"}, timeout=10)
    assert right.status_code == 202, right.text
    job = right.json()
    assert job["kind"] == "burst" and job["status"] == "running" and job["events"] == 40
    busy = requests.post(url, json=burst, headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"}, timeout=10)
    assert busy.status_code == 409
    deadline = time.monotonic() + 60
    while get(url).json()["running"]["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get(url).json()["running"]["status"] == "finished"
    after = sum(h for _, h in KafkaResource(bootstrap_servers=kafka_bootstrap).watermarks("user-events").values())
    assert after - before >= 40
    unknown = requests.post(url, json={"kind": "scenario", "scenario": "nope"}, timeout=10,
                            headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    assert unknown.status_code == 422 and "brute_force" in json.dumps(unknown.json())
    scenario = requests.post(url, json={"kind": "scenario", "scenario": "brute_force"}, timeout=10,
                             headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    assert scenario.status_code == 202 and scenario.json()["expected_rule"] == "brute_force"


def test_a_stored_alert_is_pushed_on_the_stream(dashboard_url, dashboard_writer_url, seeded):
    with requests.get(f"{dashboard_url}/api/stream", stream=True, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        kinds = set()
        while not {"health", "metrics"} <= kinds:  # the first tick comes at once
            line = next(lines)
            if line.startswith("event: "):
                kinds.add(line[7:])
        row = data.alert_row("account_takeover", "CRITICAL")
        committed = time.monotonic()
        data.insert_alerts(dashboard_writer_url, [row])
        event = None
        for line in lines:
            if line == "event: alert":
                event = "alert"
            elif event == "alert" and line.startswith("data: "):
                alert = json.loads(line[6:])
                if alert["alert_id"] == row[0]:
                    break
        assert time.monotonic() - committed < 2.0
        assert alert["rule"] == "account_takeover" and alert["severity"] == "CRITICAL"
