"""The Flink CEP sidecar end to end: a real broker, the real PyFlink job (embedded mini-cluster, and once
on a local session cluster), the alert loader and a real PostgreSQL.

Each test produces to topics of its own module (created here, LogAppendTime like `user-events`), so
alerts can be attributed exactly: hand-written events use fresh user ids and IPs per test, and the one
simulator run of the module owns the simulator's user ids.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from contract.alerts import ALERT_FIELDS, alert_id
from contract.detection import (
    RULE_ACCOUNT_TAKEOVER,
    RULE_BRUTE_FORCE,
    RULE_CREDENTIAL_STUFFING,
    RULE_IMPOSSIBLE_TRAVEL,
    RULE_RAPID_ACTIVITY,
    DetectionThresholds,
)
from contract.topics import TopicSpec
from contract.user_events import UserEvent
from resources.kafka import ensure_topics
from settings import Settings
from simulator import Simulator, SimulatorConfig, make_producer, run
from simulator.geo import destination, haversine_km
from stack.procs import Supervisor, free_port, wait_until
from stack.services import AlertLoader, FlinkCEP
from stack.services.flink_cep import ensure_flink_venv
from tests.flink_cluster import FlinkJobManager, FlinkTaskManager

pytestmark = pytest.mark.integration

T = DetectionThresholds()  # the job runs with the defaults (no CEP_* variables are set here)
BERLIN = (52.52, 13.405)
ALERT_TIMEOUT_S = 60  # generous: the first alerts after a (re)start wait for the job's start-up
QUIET_S = 4  # how long "nothing else arrives" is watched after the last expected alert


# ------------------------------------------------------------------------------------- helpers
def event(user: str, event_type: str, ts: int, ip: str = "198.51.100.7", where: tuple[float, float] = BERLIN,
          country: str = "DE") -> UserEvent:
    return UserEvent(event_id=str(uuid.uuid4()), event_type=event_type, user_id=user, occurred_at=ts,
                     ip=ip, country=country, lat=round(where[0], 4), lon=round(where[1], 4),
                     session_id=None, device_id="d-test", user_agent="pytest")


def expected_id(rule: str, subject: str, evidence: Iterable[UserEvent]) -> str:
    ordered = sorted(evidence, key=lambda e: (e.occurred_at, e.event_id))
    return alert_id(rule, subject, [e.event_id for e in ordered])


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def _as_alert(value: bytes) -> dict | None:
    """The alert in a message, or None for what a test put on the topic that is not one."""
    try:
        alert = json.loads(value)
    except ValueError:
        return None
    return alert if isinstance(alert, dict) and set(ALERT_FIELDS) <= set(alert) else None


class Alerts:
    """Every alert on the module's alert topic, collected by a background consumer."""

    def __init__(self, bootstrap: str, topic: str):
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": fresh("it-alerts"),
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                   "fetch.wait.max.ms": 50})
        self._consumer.subscribe([topic])
        self.received: list[tuple[dict, int]] = []  # (alert, receive time ms)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(100, 0.1):
                if msg.error() is None and (alert := _as_alert(msg.value())) is not None:
                    with self._lock:
                        self.received.append((alert, now_ms()))
        self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def matching(self, predicate: Callable[[dict], bool]) -> list[dict]:
        with self._lock:
            return [a for a, _ in self.received if predicate(a)]

    def about(self, *subjects: str) -> list[dict]:
        wanted = set(subjects)
        return self.matching(lambda a: a["user_id"] in wanted or (a["user_id"] is None and a["ip"] in wanted))

    def wait_for(self, predicate: Callable[[dict], bool], count: int = 1, timeout_s: float = ALERT_TIMEOUT_S) -> list[dict]:
        wait_until(lambda: len(self.matching(predicate)) >= count, timeout_s, 0.1)
        found = self.matching(predicate)
        assert len(found) >= count, f"expected {count} alerts, got {len(found)}: {found}"
        return found


class Module:
    """What the tests of this module share: topics, producer, the CEP job, the loader, collected alerts."""

    def __init__(self, cfg: Settings, bootstrap: str, postgres_url: str, supervisor: Supervisor):
        self.cfg, self.bootstrap, self.postgres_url, self.supervisor = cfg, bootstrap, postgres_url, supervisor
        self.events_topic, self.alerts_topic = fresh("it-cep-events"), fresh("it-cep-alerts")
        ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), [
            TopicSpec(self.events_topic, 2, {"message.timestamp.type": "LogAppendTime"}),
            TopicSpec(self.alerts_topic, 1),
        ])
        self.job = FlinkCEP(cfg, env={
            "FLINK_CEP_INPUT_TOPIC": self.events_topic,
            "FLINK_CEP_ALERT_TOPIC": self.alerts_topic,
            "FLINK_CEP_GROUP_ID": fresh("it-cep"),
            "FLINK_CHECKPOINT_INTERVAL_S": "2",
            "FLINK_CHECKPOINT_DIR": str(cfg.data_dir / "flink-it" / self.events_topic),
        })
        self.loader = AlertLoader(cfg, topic=self.alerts_topic, group_id=fresh("it-loader"))
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"})
        self.alerts = Alerts(bootstrap, self.alerts_topic)

    def produce(self, events: Iterable[UserEvent]) -> None:
        for e in events:
            self.producer.produce(self.events_topic, e.to_json(), e.key())
        assert self.producer.flush(30) == 0

    def produce_to_partition(self, events: Iterable[UserEvent], partition: int) -> None:
        for e in events:
            self.producer.produce(self.events_topic, e.to_json(), e.key(), partition=partition)
        assert self.producer.flush(30) == 0

    def stored(self, where: str, params: tuple = ()) -> list[dict]:
        with psycopg.connect(self.postgres_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return cur.execute(f"SELECT * FROM security_alerts WHERE {where}", params).fetchall()

    def wait_stored(self, alert_ids: set[str], timeout_s: float = 20) -> list[dict]:
        rows: list[dict] = []

        def all_there() -> bool:
            nonlocal rows
            rows = self.stored("alert_id = ANY(%s)", (list(alert_ids),))
            return {r["alert_id"] for r in rows} >= alert_ids

        assert wait_until(all_there, timeout_s, 0.2), f"not stored: {alert_ids - {r['alert_id'] for r in rows}}"
        return rows


@pytest.fixture(scope="module")
def flink_venv(stack_cfg: Settings) -> Path:
    return ensure_flink_venv(stack_cfg.flink_venv_dir, log_dir=stack_cfg.log_dir)


@pytest.fixture(scope="module")
def cep(stack_cfg, kafka_bootstrap, postgres_url, supervisor, services, flink_venv):
    m = Module(stack_cfg, kafka_bootstrap, postgres_url, supervisor)
    try:
        services.start(m.loader)
        services.start(m.job)  # healthy = every task of the job RUNNING
        yield m
    finally:
        m.alerts.close()
        supervisor.stop(m.job.spec())
        supervisor.stop(m.loader.spec())


# ------------------------------------------------------------------------ simulator scenarios
@pytest.fixture(scope="module")
def scenario_run(cep: Module, stack_root: Path):
    """One simulated hour (an impossible-travel scenario needs more than ten minutes of simulated time)
    with every attack and control template several times, over light background traffic."""
    config = SimulatorConfig(seed=20261126, clock="simulated", duration_s=3600, rate=5, users=400,
                             scenario_rate=1.0, thresholds=T, topic=cep.events_topic,
                             out_dir=stack_root / "simulator" / "cep-it", run_id="cep-it")
    summary = run(config, make_producer(cep.bootstrap))
    assert summary["delivered"] == summary["produced"]
    from simulator import load_ground_truth

    truth = load_ground_truth(summary["out_dir"])
    labels = [lb for lb in truth.labels if lb.expected_rule != "behavior_anomaly" and lb.complete]
    positives = [lb for lb in labels if lb.expected_alert]
    subject = lambda lb: lb.user_id if lb.user_id is not None else lb.ip
    expected = {(lb.expected_rule, subject(lb)) for lb in positives}
    cep.alerts.wait_for(lambda a: (a["rule"], a["user_id"] or a["ip"]) in expected, count=len(expected),
                        timeout_s=120)
    time.sleep(QUIET_S)
    return truth, labels


def test_every_rule_fires_once_on_its_scenario_and_never_on_its_controls(cep: Module, scenario_run):
    truth, labels = scenario_run
    scenario_users = {u["user_id"] for u in truth.users}
    # the simulator's users are u-NNNNNN, its attackers and users have addresses in 185.0/16 and 24/8
    alerts = cep.alerts.matching(lambda a: a["user_id"] in scenario_users or (
        a["user_id"] is None and a["ip"].startswith(("185.0.", "24."))))
    by_key: dict[tuple[str, str], list[dict]] = {}
    for a in alerts:
        by_key.setdefault((a["rule"], a["user_id"] or a["ip"]), []).append(a)

    templates_seen = {lb.scenario for lb in labels}
    assert {"brute_force", "brute_force_control", "account_takeover", "account_takeover_control_few_failures",
            "account_takeover_control_late_success", "rapid_activity", "rapid_activity_control",
            "impossible_travel", "impossible_travel_control_speed", "impossible_travel_control_short_hop",
            "credential_stuffing", "credential_stuffing_control"} <= templates_seen

    positives = [lb for lb in labels if lb.expected_alert]
    controls = [lb for lb in labels if not lb.expected_alert]
    for lb in positives:
        subject = lb.user_id if lb.user_id is not None else lb.ip
        found = by_key.get((lb.expected_rule, subject), [])
        assert len(found) == 1, f"{lb.scenario} {subject}: {len(found)} {lb.expected_rule} alerts"
        assert set(found[0]["evidence_event_ids"]) <= set(lb.event_ids)
    for lb in controls:
        subject = lb.user_id if lb.user_id is not None else lb.ip
        assert (lb.expected_rule, subject) not in by_key, f"control {lb.scenario} {subject} raised an alert"
    expected_keys = {(lb.expected_rule, lb.user_id if lb.user_id is not None else lb.ip) for lb in positives}
    assert set(by_key) == expected_keys  # nothing on background users, nothing extra
    assert all(a["user_id"] is None or a["user_id"] in scenario_users for a in alerts)


def test_alerts_are_complete_and_their_ids_recomputable(cep: Module, scenario_run):
    alerts = cep.alerts.matching(lambda a: True)
    assert alerts
    for a in alerts:
        subject = a["user_id"] if a["user_id"] is not None else a["ip"]
        assert a["alert_id"] == alert_id(a["rule"], subject, a["evidence_event_ids"])
        assert a["event_count"] == len(a["evidence_event_ids"])
        assert a["trigger_event_id"] in a["evidence_event_ids"]
        assert a["window_start"] <= a["window_end"]
        assert a["trigger_event_ts"] <= a["detected_at"]
        assert a["source"] == "flink_cep" and a["severity"] in ("MEDIUM", "HIGH", "CRITICAL")
    rows = cep.wait_stored({a["alert_id"] for a in alerts})
    assert len(rows) == len({a["alert_id"] for a in alerts})


# ------------------------------------------------------------------------- exact thresholds
def test_thresholds_are_exact(cep: Module):
    """N failures alert and N-1 do not; M+1 events alert and M do not; K users alert and K-1 do not;
    1% over the speed limit alerts and 1% under does not."""
    base = now_ms() - 120_000
    n, m, k = T.brute_force_min_failures, T.rapid_activity_max_events, T.credential_stuffing_min_users
    bf_hit, bf_miss = fresh("bf-hit"), fresh("bf-miss")
    rapid_hit, rapid_miss = fresh("ra-hit"), fresh("ra-miss")
    ip_hit, ip_miss = f"192.0.2.{uuid.uuid4().int % 250 + 1}", f"198.18.0.{uuid.uuid4().int % 250 + 1}"
    fails_hit = [event(bf_hit, "LOGIN_FAILED", base + i * 1000) for i in range(n)]
    fails_miss = [event(bf_miss, "LOGIN_FAILED", base + i * 1000) for i in range(n - 1)]
    span = T.rapid_activity_window_s * 1000
    views_hit = [event(rapid_hit, "PAGE_VIEW", base + i * span // m) for i in range(m + 1)]  # exactly W wide
    views_miss = [event(rapid_miss, "PAGE_VIEW", base + i * span // (m - 1)) for i in range(m)]
    stuff_hit = [event(fresh("victim"), "LOGIN_FAILED", base + i * 2000, ip=ip_hit) for i in range(k)]
    stuff_miss = [event(fresh("victim"), "LOGIN_FAILED", base + i * 2000, ip=ip_miss) for i in range(k - 1)]

    travel = {}
    for name, factor in (("fast", 1.01), ("slow", 0.99)):
        user = fresh(f"travel-{name}")
        far = destination(*BERLIN, 1500.0, 80.0)
        km = haversine_km(*BERLIN, round(far[0], 4), round(far[1], 4))
        elapsed = round(km / (factor * T.impossible_travel_max_kmh) * 3_600_000)
        first = event(user, "LOGIN_SUCCESS", base)
        second = event(user, "LOGIN_SUCCESS", base + elapsed, ip="203.0.113.99", where=far, country="XX")
        travel[name] = (user, [first, second])
    cep.produce(fails_hit + fails_miss + views_hit + views_miss + stuff_hit + stuff_miss
                + travel["fast"][1] + travel["slow"][1])

    want = {
        expected_id(RULE_BRUTE_FORCE, bf_hit, fails_hit),
        expected_id(RULE_RAPID_ACTIVITY, rapid_hit, views_hit),
        expected_id(RULE_CREDENTIAL_STUFFING, ip_hit, stuff_hit),
        expected_id(RULE_IMPOSSIBLE_TRAVEL, travel["fast"][0], travel["fast"][1]),
    }
    cep.alerts.wait_for(lambda a: a["alert_id"] in want, count=len(want))
    time.sleep(QUIET_S)
    subjects = (bf_hit, bf_miss, rapid_hit, rapid_miss, ip_hit, ip_miss, travel["fast"][0], travel["slow"][0])
    assert {a["alert_id"] for a in cep.alerts.about(*subjects)} == want
    cep.wait_stored(want)


def test_interleaved_users_do_not_trigger_each_other(cep: Module):
    """Two users whose events interleave, each just under every threshold (together far over them) and
    sharing one IP, raise nothing: once with both users in one partition, once spread by key."""
    base = now_ms() - 60_000
    far = destination(*BERLIN, 2000.0, 120.0)

    def interleaved(a: str, b: str, ip: str) -> list[UserEvent]:
        events = []
        for i in range(T.brute_force_min_failures - 1):
            events += [event(a, "LOGIN_FAILED", base + i * 1000, ip=ip),
                       event(b, "LOGIN_FAILED", base + i * 1000 + 500, ip=ip)]
        t0 = base + 10_000
        for i in range(T.rapid_activity_max_events // 2):
            events += [event(a, "PAGE_VIEW", t0 + i * 100, ip=ip), event(b, "PAGE_VIEW", t0 + i * 100 + 50, ip=ip)]
        # a logs in at home and b far away a minute later: impossible only if the two were one person
        return events + [event(a, "LOGIN_SUCCESS", t0 + 20_000, ip=ip),
                         event(b, "LOGIN_SUCCESS", t0 + 80_000, ip=ip, where=far)]

    same_partition = (fresh("inter-a"), fresh("inter-b"), f"100.64.1.{uuid.uuid4().int % 250 + 1}")
    by_key = (fresh("inter-c"), fresh("inter-d"), f"100.64.2.{uuid.uuid4().int % 250 + 1}")
    cep.produce_to_partition(interleaved(*same_partition), 0)
    cep.produce(interleaved(*by_key))
    sentinel = fresh("inter-sentinel")
    cep.produce([event(sentinel, "LOGIN_FAILED", base + 100_000 + i) for i in range(T.brute_force_min_failures)])
    cep.alerts.wait_for(lambda al: al["user_id"] == sentinel)
    time.sleep(QUIET_S)
    assert cep.alerts.about(*same_partition, *by_key) == []


def test_out_of_order_events_within_the_window_still_count(cep: Module):
    """Failures produced out of occurred_at order are one brute force; evidence is in event order."""
    user = fresh("ooo")
    base = now_ms() - 30_000
    fails = [event(user, "LOGIN_FAILED", base + i * 2000) for i in range(T.brute_force_min_failures)]
    shuffled = [fails[i] for i in (2, 0, 4, 1, 3)] + fails[5:]
    cep.produce(shuffled)
    [alert] = cep.alerts.wait_for(lambda a: a["user_id"] == user)
    assert alert["evidence_event_ids"] == [e.event_id for e in fails]
    assert (alert["window_start"], alert["window_end"]) == (fails[0].occurred_at, fails[-1].occurred_at)


def test_alert_is_not_held_back_by_an_idle_partition_or_a_silent_topic(cep: Module):
    """One partition idle, nothing produced after the triggering event: the alert still comes out
    (processing-time ordering waits for no watermark)."""
    time.sleep(2)  # let earlier tests' traffic drain
    user = fresh("idle")
    fails = [event(user, "LOGIN_FAILED", now_ms() + i) for i in range(T.brute_force_min_failures)]
    cep.produce_to_partition(fails, 1)
    sent = now_ms()
    [alert] = cep.alerts.wait_for(lambda a: a["user_id"] == user, timeout_s=10)
    received = next(t for a, t in cep.alerts.received if a["alert_id"] == alert["alert_id"])
    assert received - sent < 5000
    assert alert["trigger_event_id"] == fails[-1].event_id


def test_the_same_alert_delivered_twice_is_stored_once(cep: Module):
    user = fresh("dup")
    fails = [event(user, "LOGIN_FAILED", now_ms() - 5000 + i) for i in range(T.brute_force_min_failures)]
    cep.produce(fails)
    [alert] = cep.alerts.wait_for(lambda a: a["user_id"] == user)
    [first] = cep.wait_stored({alert["alert_id"]})
    for _ in range(2):  # redeliver the exact message, as an at-least-once sink or a replay would
        cep.producer.produce(cep.alerts_topic, json.dumps(alert).encode(), alert["alert_id"].encode())
    assert cep.producer.flush(10) == 0
    cep.alerts.wait_for(lambda a: a["alert_id"] == alert["alert_id"], count=3)
    time.sleep(2)  # the loader has seen the copies (it polls every 50 ms)
    rows = cep.stored("alert_id = %s", (alert["alert_id"],))
    assert len(rows) == 1 and rows[0]["stored_at"] == first["stored_at"]
    assert rows[0]["evidence_event_ids"] == [e.event_id for e in fails]
    assert rows[0]["trigger_event_ts"] is not None and rows[0]["severity"] == "HIGH"


def test_a_message_that_is_not_an_alert_is_kept_with_its_reason(cep: Module):
    """Garbage on the alerts topic stops neither the loader nor the alerts behind it, and is stored
    in security_alerts_rejected with its bytes, coordinates and reason (once, however often read)."""
    marker = fresh("garbage")
    cep.producer.produce(cep.alerts_topic, f"{{not json {marker}".encode(), b"k")
    cep.producer.produce(cep.alerts_topic, json.dumps({"alert_id": marker, "rule": "x", "severity": "SEVERE",
                                                      "source": "test", "detected_at": 1}).encode(), b"k")
    assert cep.producer.flush(10) == 0
    user = fresh("after-garbage")
    fails = [event(user, "LOGIN_FAILED", now_ms() - 5000 + i) for i in range(T.brute_force_min_failures)]
    cep.produce(fails)
    [alert] = cep.alerts.wait_for(lambda a: a["user_id"] == user)
    cep.wait_stored({alert["alert_id"]})

    with psycopg.connect(cep.postgres_url) as conn:
        rows = conn.execute(
            "SELECT reason, raw_value FROM security_alerts_rejected WHERE topic = %s AND position(%s in "
            "convert_from(raw_value, 'UTF8')) > 0 ORDER BY kafka_offset", (cep.alerts_topic, marker)).fetchall()
    assert [r[0].split(":")[0] for r in rows] == ["not JSON", "unknown severity 'SEVERE'"]
    assert bytes(rows[0][1]) == f"{{not json {marker}".encode()


# ------------------------------------------------------------------------------------ recovery
def _latest_checkpoint_ts(job: FlinkCEP) -> int:
    info = job.job_info()
    stats = requests.get(f"{info['rest_url']}/jobs/{info['job_id']}/checkpoints", timeout=5).json()
    completed = (stats.get("latest") or {}).get("completed") or {}
    return completed.get("latest_ack_timestamp", 0)


def test_sigkill_and_restart_from_checkpoint_misses_no_alert(cep: Module):
    """Patterns straddle a checkpoint and a SIGKILL: their first events are in checkpointed state,
    some are processed after the last checkpoint (lost with the process), the last ones arrive while
    the job is down. The restarted job restores the checkpoint, re-reads the rest and raises every
    alert; one raised after the checkpoint and just before the kill is raised again on replay and
    is still stored once."""
    n = T.brute_force_min_failures
    base = now_ms() - 200_000
    brute = [fresh("crash-bf") for _ in range(3)]
    fails = {u: [event(u, "LOGIN_FAILED", base + i * 1000, ip="203.0.113.9") for i in range(n)] for u in brute}
    traveller = fresh("crash-travel")
    far = destination(*BERLIN, 3000.0, 100.0)
    logins = [event(traveller, "LOGIN_SUCCESS", base), event(traveller, "LOGIN_SUCCESS", base + 600_000, where=far)]
    victim = fresh("crash-ato")
    ato_fails = [event(victim, "LOGIN_FAILED", base + i * 1000, ip="203.0.113.10") for i in range(n)]
    success = event(victim, "LOGIN_SUCCESS", base + 120_000, ip="203.0.113.10")

    # phase 1: beginnings, then a completed checkpoint that holds them
    cep.produce([f for u in brute for f in fails[u][: n - 2]] + logins[:1] + ato_fails)
    before_crash = cep.alerts.wait_for(lambda a: a["user_id"] == victim and a["rule"] == RULE_BRUTE_FORCE)
    time.sleep(1)
    mark = now_ms()
    assert wait_until(lambda: _latest_checkpoint_ts(cep.job) > mark, 30, 0.5), "no checkpoint completed"
    # phase 2: progress after that checkpoint (and one completed pattern), then the crash
    early = fresh("crash-early")
    early_fails = [event(early, "LOGIN_FAILED", base + i * 1000, ip="203.0.113.11") for i in range(n)]
    cep.produce([fails[u][n - 2] for u in brute] + early_fails)
    cep.alerts.wait_for(lambda a: a["user_id"] == early, timeout_s=10)
    killed_job = cep.job.job_info()["job_id"]
    cep.supervisor.kill(cep.job.spec())
    # phase 3: the completing events arrive while the job is down
    cep.produce([fails[u][n - 1] for u in brute] + logins[1:] + [success])
    assert not cep.alerts.about(traveller)
    cep.supervisor.start(cep.job.spec())
    info = cep.job.job_info()
    assert info["job_id"] != killed_job and info["restored_from"], info

    want = {expected_id(RULE_BRUTE_FORCE, u, fails[u]) for u in brute}
    want.add(expected_id(RULE_BRUTE_FORCE, early, early_fails))
    want.add(expected_id(RULE_IMPOSSIBLE_TRAVEL, traveller, logins))
    want.add(expected_id(RULE_ACCOUNT_TAKEOVER, victim, [*ato_fails, success]))
    cep.alerts.wait_for(lambda a: a["alert_id"] in want, count=len(want))
    time.sleep(QUIET_S)
    raised = cep.alerts.about(*brute, early, traveller, victim)
    assert {a["alert_id"] for a in raised} == want | {before_crash[0]["alert_id"]}
    print(f"alerts delivered {len(raised)} times for {len(want) + 1} distinct alerts (replay duplicates)")
    rows = cep.wait_stored(want | {before_crash[0]["alert_id"]})
    assert len(rows) == len(want) + 1  # one row per alert, however often it was delivered


# ---------------------------------------------------------------------------- session cluster
def test_job_submitted_to_a_local_session_cluster_raises_alerts(stack_cfg, kafka_bootstrap, supervisor,
                                                                 services, flink_venv):
    """JobManager and TaskManager from the PyFlink distribution's scripts on localhost; the job is
    submitted with FLINK_JOBMANAGER and its alert comes out of the cluster."""
    jm = FlinkJobManager(stack_cfg, rest_port=free_port(), rpc_port=free_port(), venv=stack_cfg.flink_venv_dir)
    tm = FlinkTaskManager(stack_cfg, jm, slots=2)
    events_topic, alerts_topic = fresh("it-cluster-events"), fresh("it-cluster-alerts")
    ensure_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), [
        TopicSpec(events_topic, 2, {"message.timestamp.type": "LogAppendTime"}), TopicSpec(alerts_topic, 1)])
    job = FlinkCEP(stack_cfg, name="flink-cep-remote", env={
        "FLINK_JOBMANAGER": jm.address,
        "FLINK_CEP_INPUT_TOPIC": events_topic,
        "FLINK_CEP_ALERT_TOPIC": alerts_topic,
        "FLINK_CEP_GROUP_ID": fresh("it-cluster"),
        "FLINK_CHECKPOINT_DIR": str(stack_cfg.data_dir / "flink-it" / events_topic),
    })
    alerts = Alerts(kafka_bootstrap, alerts_topic)
    try:
        services.start(jm)
        services.start(tm)
        services.start(job)
        info = job.job_info()
        overview = requests.get(f"{jm.endpoint()}/jobs/overview", timeout=5).json()["jobs"]
        assert any(j["jid"] == info["job_id"] and j["state"] == "RUNNING" for j in overview)

        user = fresh("cluster")
        fails = [event(user, "LOGIN_FAILED", now_ms() - 10_000 + i * 100) for i in range(T.brute_force_min_failures)]
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for e in fails:
            producer.produce(events_topic, e.to_json(), e.key())
        assert producer.flush(30) == 0
        [alert] = alerts.wait_for(lambda a: a["user_id"] == user)
        assert alert["alert_id"] == expected_id(RULE_BRUTE_FORCE, user, fails)

        supervisor.stop(job.spec())  # cancels the job on the cluster
        assert wait_until(lambda: all(j["state"] != "RUNNING" for j in requests.get(
            f"{jm.endpoint()}/jobs/overview", timeout=5).json()["jobs"] if j["jid"] == info["job_id"]), 30)
    finally:
        alerts.close()
        for service in (job, tm, jm):
            supervisor.stop(service.spec())


def test_simulator_run_uses_the_thresholds_of_the_job():
    """Guard for this module's assumptions: the simulator plans its scenarios from the same defaults."""
    sim = Simulator(SimulatorConfig(seed=1, clock="simulated", count=10, thresholds=T))
    assert sim.config.thresholds == DetectionThresholds()
