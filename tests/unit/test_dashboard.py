"""The dashboard without services: the vendored chart library matches its pin and checksums, the page loads
only what the app serves, the alert cursor round-trips and rejects what it did not hand out, the shared cache
computes once for concurrent callers, test scenarios are bounded and use their own ids and addresses, and the
stack runs the dashboard with the read-only login only."""

import asyncio
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from contract.detection import DetectionThresholds
from dashboard.app import STATIC, create_app
from dashboard.cache import Cached
from dashboard.sources.alerts import BadCursor, decode_cursor, encode_cursor
from dashboard.traffic import SCENARIOS, TrafficError, plan_scenario
from dashboard.vendor import MANIFEST, TARGET, pinned_version
from settings import Settings
from stack.services import Dashboard, all_services

pytestmark = pytest.mark.unit


def test_vendored_chart_library_matches_its_pin_and_checksums():
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["package"] == "uplot" and manifest["version"] == pinned_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned_version())  # pinned exactly, no range
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((TARGET / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (TARGET / "LICENSE").read_text()


def test_the_page_loads_nothing_from_elsewhere():
    html = (STATIC / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    local = [s for s in sources if s.startswith("/static/")]
    assert {"/static/vendor/uplot/uPlot.iife.min.js", "/static/app.js", "/static/style.css"} <= set(local)
    for source in local:
        assert (STATIC / source.removeprefix("/static/")).is_file(), source
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    script = (STATIC / "app.js").read_text()
    called = re.findall(r'(?:getJSON|fetch|EventSource)\("([^"]+)"', script)
    assert called and all(url.startswith("/api/") for url in called), called
    for name in ("health", "events", "freshness", "alerts", "segments", "quarantine", "lag", "runs", "test-traffic"):
        assert f'data-section="{name}"' in html


def test_alert_cursor_round_trips_and_rejects_foreign_values():
    at = datetime(2026, 11, 26, 12, 0, 1, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "abc")) == (at, "abc")
    for foreign in ("bm90LWEtY3Vyc29y", "", "e30", encode_cursor(at, "x")[:-3] + "___"):
        with pytest.raises(BadCursor):
            decode_cursor(foreign)


def test_cache_computes_once_for_concurrent_callers_and_retries_after_a_failure():
    calls = []

    async def compute():
        calls.append(1)
        await asyncio.sleep(0.05)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return {"n": len(calls)}

    async def scenario():
        cache = Cached(compute, ttl_s=60, encode=lambda v: json.dumps(v).encode())
        results = await asyncio.gather(*[cache.get() for _ in range(20)], return_exceptions=True)
        assert len(calls) == 1 and all(isinstance(r, RuntimeError) for r in results)
        results = await asyncio.gather(*[cache.get() for _ in range(20)])
        assert len(calls) == 2 and all(r == {"n": 2} for r in results)
        value, body = await cache.get_encoded()
        assert value == {"n": 2}
        assert body == b'{"n": 2}' and (await cache.get_encoded())[1] is body
        cache.invalidate()
        assert (await cache.get()) == {"n": 3}

    asyncio.run(scenario())


def test_scenarios_are_bounded_and_use_ids_and_addresses_of_their_own():
    assert "brute_force" in SCENARIOS and "credential_stuffing_control" in SCENARIOS
    plan = plan_scenario("brute_force", "dashboard-test", DetectionThresholds(), start_ms=1_800_000_000_000)
    assert plan.events and plan.end_ms - 1_800_000_000_000 < 600_000
    assert all(u.user_id.startswith("u-9") and len(u.user_id) == 11 for u in plan.users)
    assert all(label.expected_rule == "brute_force" for label in plan.labels)
    for _, _, payload, _, _ in plan.events:
        ip = json.loads(payload)["ip"]
        assert ip.startswith("100.") and 64 <= int(ip.split(".")[1]) < 128, ip
    with pytest.raises(TrafficError, match="longer than"):
        plan_scenario("impossible_travel", "dashboard-test", DetectionThresholds(impossible_travel_min_km=5000))


def test_the_stack_runs_the_dashboard_with_the_read_only_login_only(tmp_path):
    cfg = Settings(data_dir=tmp_path, dashboard_token=SecretStr("s3cret"))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "postgres-password").write_text("superuser-password\n")
    cfg.ensure_dashboard_db_password()
    names = [s.name for s in all_services(cfg)]
    assert names.index("dashboard") == names.index("dagster-daemon") + 1 and names[-1] == "simulator"
    spec = Dashboard(cfg).spec()
    assert "superuser-password" not in json.dumps(spec.env) + " ".join(spec.argv)
    assert spec.env["DASHBOARD_POSTGRES_URL"].startswith("postgresql://lakehouse_dashboard:")
    assert "POSTGRES_URL" not in spec.env and "s3cret" not in " ".join(spec.argv)
    assert spec.env["DASHBOARD_TOKEN"] == "s3cret" and spec.ports == {"DASHBOARD_PORT": 8082}
    assert "s3cret" not in repr(cfg)


def test_an_external_postgres_without_a_dashboard_login_falls_back_to_it():
    url = "postgresql://app:pw@db.example:5432/analytics_db"
    cfg = Settings.from_env({"POSTGRES_URL": url})
    assert cfg.dashboard_db_url == url and not cfg.dashboard_db_read_only
    ro = "postgresql://reader:pw@db.example:5432/analytics_db"
    cfg = Settings.from_env({"POSTGRES_URL": url, "DASHBOARD_POSTGRES_URL": ro})
    assert cfg.dashboard_db_url == ro and cfg.dashboard_db_read_only
    assert Dashboard(cfg).spec().env["DASHBOARD_POSTGRES_URL"] == ro


def test_openapi_documents_every_endpoint_and_its_errors(tmp_path):
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    assert set(spec["paths"]) == {"/api/health", "/api/metrics", "/api/alerts", "/api/segments", "/api/spark-metrics",
                                  "/api/kafka", "/api/stream", "/api/generate-test-data"}
    post = spec["paths"]["/api/generate-test-data"]["post"]
    assert {"202", "400", "401", "403", "409", "422"} <= set(post["responses"])
    assert "503" in spec["paths"]["/api/health"]["get"]["responses"]
    assert "text/event-stream" in spec["paths"]["/api/stream"]["get"]["responses"]["200"]["content"]
