"""The simulator without Kafka: repeatable streams, background traffic that never crosses a security
rule, scenarios that cross exactly where labelled, malformed messages wrong in exactly the labelled way,
and ground truth that round-trips through its files.

The detector and the validator below are written here, independently of the simulator, from the
rules in contract.detection and contract.user_events.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from itertools import pairwise

import pytest

from contract.detection import DetectionThresholds
from contract.user_events import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    EVENT_TYPES,
    FIELDS,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    UserEvent,
)
from simulator import HEADER_EXPECTED, Simulator, SimulatorConfig, load_ground_truth, write_ground_truth
from simulator.encoding import encode_event, session_fragment

pytestmark = pytest.mark.unit

START_MS = 1_764_000_000_000
VALID_KINDS = {"background", "drift", "scenario", "duplicate"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def config(**overrides) -> SimulatorConfig:
    values = {"seed": 11, "clock": "simulated", "start_ms": START_MS, "thresholds": DetectionThresholds()}
    return SimulatorConfig(**{**values, **overrides})


# -- reference detector ------------------------------------------------------------------------------


def km_between(a: dict, b: dict) -> float:
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dp, dl = p2 - p1, math.radians(b["lon"] - a["lon"])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def detect(
    events: list[dict], t: DetectionThresholds, travel_between: str = "logins"
) -> set[tuple[str, str]]:
    """(rule, user or IP) for every threshold crossing, with inclusive windows (the strict reading).

    travel_between="logins" compares consecutive LOGIN_SUCCESS; "events" every consecutive pair of
    located events of a user, a stricter reading that background traffic must pass too."""
    found: set[tuple[str, str]] = set()
    by_user: dict[str, list[dict]] = defaultdict(list)
    failures_by_ip: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
        if e["event_type"] == "LOGIN_FAILED" and e["ip"]:
            failures_by_ip[e["ip"]].append(e)
    n, m, k = t.brute_force_min_failures, t.rapid_activity_max_events, t.credential_stuffing_min_users
    for user, evs in by_user.items():
        evs.sort(key=lambda e: e["occurred_at"])
        ts = [e["occurred_at"] for e in evs]
        if any(ts[i + m] - ts[i] <= t.rapid_activity_window_s * 1000 for i in range(len(ts) - m)):
            found.add(("rapid_activity", user))
        fails = [e["occurred_at"] for e in evs if e["event_type"] == "LOGIN_FAILED"]
        burst_ends = [
            fails[i + n - 1]
            for i in range(len(fails) - n + 1)
            if fails[i + n - 1] - fails[i] <= t.brute_force_window_s * 1000
        ]
        if burst_ends:
            found.add(("brute_force", user))
        successes = [e["occurred_at"] for e in evs if e["event_type"] == "LOGIN_SUCCESS"]
        if any(0 <= s - b <= t.takeover_success_within_s * 1000 for s in successes for b in burst_ends):
            found.add(("account_takeover", user))
        if travel_between == "logins":
            located = [e for e in evs if e["event_type"] == "LOGIN_SUCCESS" and e["lat"] is not None]
        else:
            located = [e for e in evs if e["lat"] is not None]
        for a, b in pairwise(located):
            km, hours = km_between(a, b), (b["occurred_at"] - a["occurred_at"]) / 3_600_000
            if km > t.impossible_travel_min_km and (hours == 0 or km / hours > t.impossible_travel_max_kmh):
                found.add(("impossible_travel", user))
    for ip, fails in failures_by_ip.items():
        fails.sort(key=lambda e: e["occurred_at"])
        for i, first in enumerate(fails):
            users = {
                e["user_id"]
                for e in fails[i:]
                if e["occurred_at"] - first["occurred_at"] <= t.credential_stuffing_window_s * 1000
            }
            if len(users) >= k:
                found.add(("credential_stuffing", ip))
                break
    return found


def valid_events(messages) -> list[dict]:
    return [json.loads(m.value) for m in messages if m.kind in VALID_KINDS]


def expected_alerts(labels) -> set[tuple[str, str]]:
    return {
        (label.expected_rule, label.user_id or label.ip)
        for label in labels
        if label.expected_alert and label.scenario != "drift"
    }


# -- a long run shared by several tests ----------------------------------------------------------------


@pytest.fixture(scope="module")
def long_run():
    """30 simulated minutes of 2,000 users with 4 scenarios a minute."""
    sim = Simulator(config(users=2000, rate=60, duration_s=1800, scenario_rate=4, malformed_rate=0.01))
    messages = list(sim.events())
    return sim, messages


def test_background_traffic_never_crosses_a_threshold(long_run):
    sim, messages = long_run
    background = [json.loads(m.value) for m in messages if m.kind in ("background", "drift", "duplicate")]
    assert len(background) > 50_000
    t = sim.config.thresholds
    assert detect(background, t) == set()
    assert detect(background, t, travel_between="events") == set()


def test_every_positive_scenario_is_detected_and_no_control(long_run):
    sim, messages = long_run
    scenario_labels = [label for label in sim.ground_truth().labels if label.scenario != "drift"]
    assert scenario_labels and all(label.complete for label in scenario_labels)
    assert {label.scenario for label in scenario_labels} == {
        "brute_force",
        "brute_force_control",
        "account_takeover",
        "account_takeover_control_few_failures",
        "account_takeover_control_late_success",
        "rapid_activity",
        "rapid_activity_control",
        "impossible_travel",
        "impossible_travel_control_speed",
        "impossible_travel_control_short_hop",
        "credential_stuffing",
        "credential_stuffing_control",
    }
    events = valid_events(messages)
    expected = expected_alerts(scenario_labels)
    controls = {
        (label.expected_rule, label.user_id or label.ip)
        for label in scenario_labels
        if not label.expected_alert
    }
    for travel_between in ("logins", "events"):
        found = detect(events, sim.config.thresholds, travel_between)
        assert found == expected
        assert not found & controls


def test_labels_name_exactly_the_events_of_their_scenario(long_run):
    sim, messages = long_run
    by_id = {e["event_id"]: e for e in valid_events(messages)}
    for label in sim.ground_truth().labels:
        events = [by_id[event_id] for event_id in label.event_ids]
        assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
        if not events:  # a drift that had not started yet
            continue
        assert (label.start_ms, label.end_ms) == (events[0]["occurred_at"], events[-1]["occurred_at"])
        if label.user_id is not None:
            assert {e["user_id"] for e in events} == {label.user_id}
        if label.expected_rule == "credential_stuffing":
            assert {e["ip"] for e in events} == {label.ip}
    drift = [label for label in sim.ground_truth().labels if label.scenario == "drift"]
    assert drift and all(label.expected_rule == "behavior_anomaly" for label in drift)
    assert sum(len(label.event_ids) for label in drift) > 0


def test_scenario_users_and_ips_are_not_shared_with_background(long_run):
    sim, messages = long_run
    users = sim.ground_truth().users
    scenario_users = {u["user_id"] for u in users if u["scenario_id"]}
    background_users = {json.loads(m.value)["user_id"] for m in messages if m.kind == "background"}
    assert scenario_users and not scenario_users & background_users
    ips = [d["ip"] for u in users for d in u["devices"]]
    assert len(ips) == len(set(ips))
    personas = {u["persona"] for u in users}
    assert {"casual_browser", "power_shopper", "night_owl", "bot_like_scraper", "dormant"} <= personas


def test_guards_follow_the_thresholds_given():
    """Thresholds so tight that ordinary behaviour would cross each of them (scrapers the rapid-activity
    limit, mistyped passwords brute force, globetrotting drifters impossible travel): the generator's
    guards, derived from the thresholds passed in, keep background traffic under all of them."""
    t = DetectionThresholds(
        brute_force_min_failures=2,
        brute_force_window_s=300,
        rapid_activity_max_events=8,
        rapid_activity_window_s=20,
        impossible_travel_min_km=120,
        credential_stuffing_min_users=3,
        takeover_success_within_s=120,
    )
    sim = Simulator(
        config(seed=5, users=600, rate=25, duration_s=1800, scenario_rate=6, thresholds=t, drift_users=60)
    )
    messages = list(sim.events())
    background = [json.loads(m.value) for m in messages if m.kind in ("background", "drift", "duplicate")]
    assert detect(background, t, travel_between="events") == set()
    labels = [label for label in sim.ground_truth().labels if label.scenario != "drift" and label.complete]
    assert detect(valid_events(messages), t) == expected_alerts(labels)


# -- determinism ------------------------------------------------------------------------------------


def test_same_seed_same_stream_and_truth():
    def run(seed: int):
        sim = Simulator(
            config(seed=seed, users=800, rate=100, count=20_000, scenario_rate=6, malformed_rate=0.01)
        )
        return list(sim.events()), sim.ground_truth()

    (a, truth_a), (b, truth_b), (c, _) = run(3), run(3), run(4)
    assert a == b
    assert truth_a.labels == truth_b.labels and truth_a.users == truth_b.users
    assert truth_a.malformed == truth_b.malformed
    assert a != c
    assert len(a) == 20_000


# -- malformed messages ---------------------------------------------------------------------------------


def violations(value: bytes, now_ms: int, seen_ids: set[str], limit: int) -> list[str]:
    """Everything wrong with a payload under the contract, in the reasons' vocabulary."""
    if not value:
        return ["empty_payload"]
    found = ["oversized_payload"] if len(value) > limit else []
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        found.append("invalid_utf8")
        text = value.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return [*found, "invalid_json"]
    if not isinstance(data, dict):
        return [*found, "invalid_json"]
    found += [f"missing_field:{name}" for name in REQUIRED_FIELDS if data.get(name) is None]
    typed = {}
    for f in FIELDS:
        v = data.get(f.name)
        if v is None or f.spark_type == "STRING":
            typed[f.name] = v
            continue
        ok = {
            "BIGINT": isinstance(v, int) and not isinstance(v, bool),
            "INT": isinstance(v, int) and not isinstance(v, bool),
            "DOUBLE": isinstance(v, int | float) and not isinstance(v, bool),
        }.get(f.spark_type, isinstance(v, dict) and all(isinstance(x, str) for x in v.values()))
        if ok:
            typed[f.name] = v
        else:
            found.append(f"wrong_type:{f.name}")
    event_id, event_type = typed.get("event_id"), typed.get("event_type")
    if isinstance(event_id, str) and not UUID_RE.fullmatch(event_id):
        found.append("invalid_event_id")
    if event_type is not None and event_type not in EVENT_TYPES:
        found.append("unknown_event_type")
    lat, lon = typed.get("lat"), typed.get("lon")
    coordinates_typed = "wrong_type:lat" not in found and "wrong_type:lon" not in found
    if coordinates_typed and (
        (lat is None) != (lon is None) or (lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180))
    ):
        found.append("invalid_coordinates")
    if typed.get("occurred_at") is not None and typed["occurred_at"] > now_ms + DEFAULT_MAX_FUTURE_SKEW_MS:
        found.append("future_timestamp")
    if typed.get("schema_version") is not None and typed["schema_version"] != SCHEMA_VERSION:
        found.append("unsupported_schema_version")
    if event_id in seen_ids:
        found.append("duplicate_event_id")
    return found


def test_each_malformed_message_is_wrong_in_exactly_the_labelled_way():
    limit = 4096
    sim = Simulator(config(users=500, rate=50, count=40_000, malformed_rate=0.2, max_payload_bytes=limit))
    messages = list(sim.events())
    records = iter(sim.malformed)
    seen: set[str] = set()
    now_ms = START_MS
    reasons = set()
    for m in messages:
        problems = violations(m.value, now_ms, seen, limit)
        if m.headers is None:
            assert problems == [], m.value
            event = json.loads(m.value)
            seen.add(event["event_id"])
            now_ms = event["occurred_at"]
            assert m.key == event["user_id"].encode()
            continue
        record = next(records)
        assert m.headers == [(HEADER_EXPECTED, record.expected_reason.encode())]
        assert problems == [record.expected_reason], (record, m.value[:200])
        assert m.key == record.key.encode()
        if m.kind == "malformed":
            assert m.key == f"malformed-{record.seq}".encode()
        reasons.add(record.expected_reason)
        if record.expected_reason == "oversized_payload":
            assert len(m.value) > limit
        if record.expected_reason == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                m.value.decode("utf-8")
    assert reasons == {
        "empty_payload",
        "oversized_payload",
        "invalid_utf8",
        "invalid_json",
        "invalid_event_id",
        "unknown_event_type",
        "invalid_coordinates",
        "future_timestamp",
        "unsupported_schema_version",
        "duplicate_event_id",
        *(f"missing_field:{name}" for name in REQUIRED_FIELDS),
        *(f"wrong_type:{f.name}" for f in FIELDS if f.spark_type != "STRING"),
    }
    assert next(records, None) is None


def test_valid_payloads_are_byte_identical_to_the_contract_encoder():
    sim = Simulator(config(users=300, rate=40, count=3_000, malformed_rate=0.0))
    for m in sim.events():
        assert UserEvent.from_json(m.value).to_json() == m.value
    fragment = session_fragment("s-1", None, "DE", 52.52, None, "d-1", 'agent "quoted" \u00e9')
    event = UserEvent(
        "e", "PAGE_VIEW", "u-1", 5, "s-1", None, "DE", 52.52, None, "d-1", 'agent "quoted" \u00e9'
    )
    assert encode_event("e", "PAGE_VIEW", "u-1", 5, fragment) == event.to_json()


# -- ground truth files ----------------------------------------------------------------------------------


def test_ground_truth_round_trips_through_files(tmp_path):
    sim = Simulator(config(users=400, rate=60, count=15_000, scenario_rate=6, malformed_rate=0.01))
    for _ in sim.events():
        pass
    truth = sim.ground_truth({"run_id": "test"})
    write_ground_truth(tmp_path / "run", truth)
    loaded = load_ground_truth(tmp_path / "run")
    assert loaded.labels == truth.labels and loaded.labels
    assert loaded.malformed == truth.malformed and loaded.malformed
    assert loaded.users == truth.users
    assert loaded.summary == json.loads(json.dumps(truth.summary))
    assert loaded.summary["messages"] == 15_000


# -- a population kept across restarts ------------------------------------------------------------------


def test_restarted_runs_continue_the_same_people_and_raise_no_false_alert(tmp_path):
    """Three runs on one stored population, restarted 1 and 3 minutes apart (the second stop unclean):
    the same users, homes and devices; ids and IPs never handed out twice; and over all three runs
    together the reference detector finds exactly the labelled scenarios (a restart that "moved" users
    would show as impossible travel)."""
    from simulator.population_store import PopulationStore

    store = PopulationStore(tmp_path / "population")
    events, labels, scenario_users, event_ids, scenario_ids_per_run = [], [], [], set(), []
    start, runs = START_MS, []
    for run, (seed, gap_ms, clean) in enumerate([(1, 60_000, True), (2, 180_000, False), (3, 0, True)]):
        population = store.load() if store.exists() else None
        sim = Simulator(config(seed=seed, users=600, rate=30, duration_s=900, scenario_rate=4, start_ms=start),
                        population=population)
        messages = list(sim.events())
        store.save(sim.population(run + 1), clean=clean)
        valid = valid_events(messages)
        runs.append({u.user_id: (u.home_lat, u.home_lon, [d.device_id for d in u.devices]) for u in sim._standing})
        events += valid
        labels += sim.ground_truth().labels
        scenario_users += [u for u in sim.users[len(sim._standing):]]
        scenario_ids_per_run.append({lb.scenario_id for lb in sim.labels if lb.scenario != "drift"})
        ids = {e["event_id"] for e in valid if e["event_id"]}
        assert not ids & event_ids  # a new run never repeats an event id of an earlier one
        event_ids |= ids
        start = (sim.last_ts or start) + gap_ms
    assert runs[0] == runs[1] == runs[2]  # the same people, at the same homes, with the same devices
    scenario_ids = [u.user_id for u in scenario_users]
    assert len(scenario_ids) == len(set(scenario_ids)) and not set(scenario_ids) & set(runs[0])
    ips = [d.ip for u in scenario_users for d in u.devices] + [d.ip for u in store.load().users for d in u.devices]
    assert len(ips) == len(set(ips))
    assert all(ids for ids in scenario_ids_per_run)
    assert sum(map(len, scenario_ids_per_run)) == len(set().union(*scenario_ids_per_run))  # never reused
    t = DetectionThresholds()
    complete = [lb for lb in labels if lb.complete]
    found = detect(events, t)
    assert expected_alerts(complete) <= found
    assert found <= expected_alerts(labels)  # nothing but planted scenarios, across both restarts


def test_population_store_round_trips_user_state(tmp_path):
    from simulator.population_store import CRASH_MARGIN, PopulationStore

    sim = Simulator(config(users=50, rate=5, duration_s=120))
    list(sim.events())
    store = PopulationStore(tmp_path)
    store.save(sim.population(1), clean=True)
    loaded = store.load()
    for a, b in zip(sim._standing, loaded.users, strict=True):
        assert (a.user_id, a.persona.name, a.city, a.home_lat, a.devices, a.last_ts, a.last_lat, a.next_free_ms,
                a.failures, a.drift) == (b.user_id, b.persona.name, b.city, b.home_lat, b.devices, b.last_ts,
                                         b.last_lat, b.next_free_ms, b.failures, b.drift)
    assert [d.user.user_id for d in loaded.drifts] == [d.user.user_id for d, _ in sim._drifts]
    store.save(sim.population(1), clean=False)
    crashed = store.load()
    assert crashed.next_user_index == loaded.next_user_index + CRASH_MARGIN["next_user_index"]
    assert crashed.attacker_ips == loaded.attacker_ips + CRASH_MARGIN["attacker_ips"]
