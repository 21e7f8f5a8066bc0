"""KAFKA_SECURITY=sasl_ssl on a real broker: the project's CA and broker certificate, SCRAM-SHA-512 users made
when the storage is formatted. A client without credentials, or with a wrong password, is refused with an error
within seconds; one configured from the settings produces (the simulator's producer config), lands the events
into bronze through Spark Connect (Spark's Kafka source with the SASL options) and gets the CEP job's alert
(the Flink Kafka connector with the same settings). No password is in a process's argv or in the broker's log.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from assets.delta import read_table, window_range_predicate
from assets.landing import land_windows
from contract.detection import RULE_ACCOUNT_TAKEOVER, RULE_BRUTE_FORCE, DetectionThresholds
from contract.topics import SECURITY_ALERTS, USER_EVENTS
from contract.user_events import UserEvent
from resources.kafka import KafkaResource, PartitionRange
from settings import Settings
from simulator import make_producer
from stack.procs import Supervisor, free_port, wait_until
from stack.services import FlinkCEP, Kafka
from stack.services.flink_cep import ensure_flink_venv

pytestmark = pytest.mark.integration

REFUSED_WITHIN_S = 8.0


@pytest.fixture(scope="module")
def secured(stack_root: Path) -> Iterator[tuple[Settings, Supervisor]]:
    """A broker with KAFKA_SECURITY=sasl_ssl in a data dir of its own, on free ports; stopped after the module."""
    cfg = Settings(data_dir=stack_root / "kafka-sasl", kafka_security="sasl_ssl", kafka_port=free_port(),
                   kafka_controller_port=free_port(), kafka_heap="384m", flink_rest_port=free_port(),
                   simulator_enabled=False)
    supervisor = Supervisor(cfg.run_dir, cfg.log_dir, cfg.host)
    broker = Kafka(cfg)
    try:
        broker.prepare()
        supervisor.start(broker.spec())
        broker.bootstrap()  # topics created by an admin client that logs in
        yield cfg, supervisor
    finally:
        supervisor.stop(broker.spec())


def _refused(config: dict) -> list[KafkaError]:
    """The errors a metadata request with `config` meets; asserts it fails, and quickly."""
    errors: list[KafkaError] = []
    admin = AdminClient({**config, "log_level": 0, "error_cb": errors.append})
    started = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    admin.poll(0.5)  # serves the error callbacks
    return errors


def test_clients_without_credentials_or_with_a_wrong_password_are_refused(secured):
    cfg, _ = secured
    # a plaintext client on the TLS listener
    _refused({"bootstrap.servers": cfg.kafka_bootstrap})
    # TLS without a SCRAM login
    _refused({"bootstrap.servers": cfg.kafka_bootstrap, "security.protocol": "SSL",
              "ssl.ca.location": str(cfg.kafka_transport.ca_file)})
    # the right user, a wrong password: an authentication error, not a hang
    errors = _refused({**cfg.kafka_client_config(), "sasl.password": "not-the-password"})
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    # the right password, but a broker certificate checked against another CA (the system's)
    _refused({**cfg.kafka_client_config(), "ssl.ca.location": "probe"})
    # and with the settings' own config the same request answers
    assert USER_EVENTS in AdminClient(cfg.kafka_client_config()).list_topics(timeout=10).topics


def test_secrets_are_private_files_never_in_argv_or_logs(secured):
    cfg, supervisor = secured
    tls = cfg.kafka_tls_dir
    for private in (tls / "ca.key", tls / "broker.pem", cfg.kafka_transport.password_file,
                    cfg.kafka_broker_password_file, cfg.data_dir / "kafka" / "server.properties"):
        assert private.stat().st_mode & 0o777 == 0o600, private
    assert tls.stat().st_mode & 0o777 == 0o700
    passwords = cfg.ensure_kafka_passwords()
    pid = int(supervisor.pid_file("kafka").read_text().split()[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    logs = "".join(p.read_text(errors="replace") for p in cfg.log_dir.rglob("*.log"))
    for password in passwords:
        assert password not in argv and password not in logs
        assert password not in repr(cfg) and password not in repr(cfg.kafka_transport)
        assert password not in json.dumps(cfg.service_env())
        assert password not in repr(KafkaResource.from_settings(cfg))


def _events(user: str, n: int) -> list[UserEvent]:
    now = int(time.time() * 1000)
    return [UserEvent(event_id=str(uuid.uuid4()), event_type="LOGIN_FAILED", user_id=user, occurred_at=now + i,
                      ip="203.0.113.9", country="DE", lat=52.52, lon=13.405, session_id=None, device_id="d-sasl",
                      user_agent="pytest") for i in range(n)]


@pytest.mark.timeout(240)
def test_an_authenticated_client_produces_lands_and_is_alerted(secured, spark, stack_cfg):
    """The events are landed before the CEP job starts (on Spark's cores alone); the job's first start reads
    user-events from the beginning, so it still sees them."""
    cfg, supervisor = secured
    kafka = KafkaResource.from_settings(cfg)
    alerts = Consumer({**cfg.kafka_client_config(), "group.id": f"it-sasl-{uuid.uuid4().hex[:8]}",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    alerts.subscribe([SECURITY_ALERTS])
    user = f"sasl-{uuid.uuid4().hex[:10]}"
    events = _events(user, DetectionThresholds().brute_force_min_failures + 1)
    before = kafka.watermarks(USER_EVENTS)
    started = datetime.now(UTC).replace(second=0, microsecond=0)
    producer = make_producer(cfg.kafka_bootstrap, security=cfg.kafka_transport.librdkafka())
    for e in events:
        producer.produce(USER_EVENTS, e.to_json(), e.key())
    assert producer.flush(30) == 0

    after = kafka.watermarks(USER_EVENTS)
    ranges = [PartitionRange(p, before[p][1], after[p][1]) for p in sorted(after)]
    assert sum(r.count for r in ranges) == len(events)
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    warehouse = cfg.data_dir / "warehouse"
    result = land_windows(spark, cfg.kafka_bootstrap, USER_EVENTS, started, end, ranges, str(warehouse / "bronze"),
                          str(warehouse / "quarantine"), security=kafka.java_config())
    assert result.rows_landed == len(events)
    landed = read_table(spark, str(warehouse / "bronze"), window_range_predicate(started, end)).collect()
    assert {r.event_id for r in landed} == {e.event_id for e in events}

    ensure_flink_venv(cfg.flink_venv_dir, log_dir=cfg.log_dir)
    job = FlinkCEP(cfg, env={"FLINK_CHECKPOINT_INTERVAL_S": "5"})
    job.prepare()
    try:
        supervisor.start(job.spec())  # healthy once every task of the job runs
        found: list[dict] = []

        def alerted() -> bool:
            for msg in alerts.consume(100, 0.2):
                if msg.error() is None and json.loads(msg.value()).get("user_id") == user:
                    found.append(json.loads(msg.value()))
            return bool(found)

        assert wait_until(alerted, 60, 0.1), "no CEP alert for the brute-force events"
        assert found[0]["rule"] in (RULE_BRUTE_FORCE, RULE_ACCOUNT_TAKEOVER)
    finally:
        alerts.close()
        supervisor.stop(job.spec())
    # Spark (the options travel over Spark Connect) and Flink (the connector's properties) never log the login
    password, _ = cfg.ensure_kafka_passwords()
    for log in (stack_cfg.log_dir / "spark-connect.log", *cfg.log_dir.rglob("*.log")):
        assert password not in log.read_text(errors="replace"), log
