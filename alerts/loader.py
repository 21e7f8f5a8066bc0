"""`python -m alerts.loader`: the `security-alerts` topic into PostgreSQL `security_alerts`.

Why a loader rather than a Flink JDBC sink: the topic is the one record of every alert, whoever raised it
(the CEP job and the ML scorer both publish there), and this one consumer stores them all. PostgreSQL
being slow or down never back-pressures or fails the detector; the loader just falls behind and
catches up. It stores what is on the topic, so re-deliveries (the CEP sink is at-least-once, and a job
restarted from a checkpoint re-raises the alerts after it) are absorbed here in one place: the insert is
ON CONFLICT (alert_id) DO NOTHING, so an alert is stored once and keeps its first `stored_at`.
And the Flink job stays free of a JDBC connector and driver on its classpath.

Delivery: consumer group `security-alerts-loader`, offsets committed only after the batch's database
transaction committed (at-least-once into an idempotent table = effectively once). Low latency: a poll
returns as soon as messages arrive (50 ms timeout when idle), and every poll's batch is written at once.
A message that is not a valid alert is stored in `security_alerts_rejected` (raw bytes, Kafka
coordinates, reason) in the same transaction as the batch's alerts, counted and logged: never lost,
never retried forever.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaError, Message
from psycopg.types.json import Jsonb

from contract.alerts import ALERT_FIELDS, Severity
from contract.topics import SECURITY_ALERTS
from resources.kafka import KafkaResource
from resources.postgres import copy_upsert
from settings import current, redact

log = logging.getLogger("alerts.loader")

TABLE = "security_alerts"
REJECTED_TABLE = "security_alerts_rejected"
REJECTED_COLUMNS = ("topic", "kafka_partition", "kafka_offset", "reason", "raw_value")
GROUP_ID = "security-alerts-loader"
COLUMNS: tuple[str, ...] = ALERT_FIELDS  # every alert field is a column; stored_at is the table's own
_TIMESTAMP_FIELDS = ("window_start", "window_end", "trigger_event_ts", "detected_at")
_SEVERITIES = {s.value for s in Severity}


class InvalidAlert(ValueError):
    """A message that cannot be stored as an alert; the reason says why."""


def _ts(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAlert(f"{name} must be epoch milliseconds, got {value!r}")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def alert_row(payload: bytes) -> tuple:
    """One `security_alerts` row (in COLUMNS order) from a message value; raises InvalidAlert."""
    try:
        alert = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise InvalidAlert(f"not JSON: {exc}") from None
    if not isinstance(alert, dict):
        raise InvalidAlert("not a JSON object")
    for required in ("alert_id", "rule", "severity", "source", "detected_at"):
        if not alert.get(required):
            raise InvalidAlert(f"missing {required}")
    if alert["severity"] not in _SEVERITIES:
        raise InvalidAlert(f"unknown severity {alert['severity']!r}")
    evidence = alert.get("evidence_event_ids") or []
    details = alert.get("details") or {}
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise InvalidAlert("evidence_event_ids must be a list of strings")
    if not isinstance(details, dict):
        raise InvalidAlert("details must be an object")
    values = dict(alert)
    for name in _TIMESTAMP_FIELDS:
        values[name] = _ts(alert.get(name), name)
    values["evidence_event_ids"] = evidence
    values["details"] = Jsonb(details)
    return tuple(values.get(column) for column in COLUMNS)


@dataclass
class LoaderStats:
    batches: int = 0
    received: int = 0
    inserted: int = 0  # new alerts; received - inserted - invalid were already stored
    invalid: int = 0


def store(conn: psycopg.Connection, rows: Sequence[tuple], rejected: Sequence[tuple] = ()) -> int:
    """Insert new alerts (and rejected messages) in one transaction; existing alert_ids are left
    untouched. Returns the number of alerts inserted."""
    with conn.transaction():
        if rejected:
            copy_upsert(conn, REJECTED_TABLE, REJECTED_COLUMNS, rejected,
                        key_columns=("topic", "kafka_partition", "kafka_offset"), update_columns=())
        if not rows:
            return 0
        return copy_upsert(conn, TABLE, COLUMNS, rows, key_columns=("alert_id",), update_columns=())


class Loader:
    """Consumes `topic` with a consumer group and stores each polled batch before committing it."""

    def __init__(
        self,
        kafka: KafkaResource,
        postgres_url: str,
        *,
        topic: str = SECURITY_ALERTS,
        group_id: str = GROUP_ID,
        max_batch: int = 1000,
        poll_timeout_s: float = 0.05,
    ):
        self.postgres_url = postgres_url
        self.topic = topic
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.stats = LoaderStats()
        self._kafka = kafka
        self.group_id = group_id
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=10)
        return self._conn

    def _store_until_done(self, rows: list[tuple], rejected: list[tuple], stop: threading.Event) -> bool:
        """Store a batch, retrying while PostgreSQL is unreachable; False if asked to stop meanwhile."""
        delay = 0.5
        while True:
            try:
                self.stats.inserted += store(self._connection(), rows, rejected)
                return True
            except psycopg.OperationalError as exc:
                log.warning("PostgreSQL at %s unavailable (%s); retrying in %.1fs",
                            redact(self.postgres_url), str(exc).strip().splitlines()[0], delay)
                if self._conn is not None:
                    self._conn.close()
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)

    def run(self, stop: threading.Event) -> LoaderStats:
        consumer = self._kafka.consumer(self.group_id, **{"fetch.wait.max.ms": 100, "session.timeout.ms": 10_000})
        consumer.subscribe([self.topic])
        last_report = time.monotonic()
        try:
            while not stop.is_set():
                messages = consumer.consume(self.max_batch, self.poll_timeout_s)
                if not messages:
                    continue
                rows, rejected = self._rows(messages)
                if not self._store_until_done(rows, rejected, stop):
                    break  # not stored: offsets stay uncommitted, the next start re-reads the batch
                consumer.commit(asynchronous=False)
                self.stats.batches += 1
                if time.monotonic() - last_report > 60:
                    last_report = time.monotonic()
                    log.info("%s", self.stats)
        finally:
            consumer.close()
            if self._conn is not None:
                self._conn.close()
        return self.stats

    def _rows(self, messages: list[Message]) -> tuple[list[tuple], list[tuple]]:
        """Alert rows, and rejected-message rows for what is not a valid alert."""
        rows, rejected = [], []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            self.stats.received += 1
            try:
                rows.append(alert_row(message.value()))
            except InvalidAlert as exc:
                self.stats.invalid += 1
                rejected.append((message.topic(), message.partition(), message.offset(), str(exc), message.value()))
                log.error("rejected message %s[%d]@%d: %s", message.topic(), message.partition(),
                          message.offset(), exc)
        return rows, rejected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alerts.loader", description=__doc__.split("\n")[0])
    parser.add_argument("--topic", default=SECURITY_ALERTS)
    parser.add_argument("--group-id", default=GROUP_ID)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = current()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("loading %s from %s into %s", args.topic, cfg.kafka_bootstrap, redact(cfg.postgres_url))
    loader = Loader(KafkaResource.from_settings(cfg), cfg.postgres_url, topic=args.topic, group_id=args.group_id)
    stats = loader.run(stop)
    log.info("stopped: %s", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
