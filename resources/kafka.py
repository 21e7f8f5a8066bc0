"""Kafka: producers, topic administration and offset queries (never payloads, never group commits)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from contract.topics import TopicSpec
from settings import KafkaTransport, Settings


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, end) of one partition: the exact slice a micro-batch reads."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


def ranges_to_json(ranges: Iterable[PartitionRange]) -> str:
    """{"<partition>": [start, end], ...}: how offset ranges travel in run tags and metadata."""
    return json.dumps({str(r.partition): [r.start, r.end] for r in ranges}, separators=(",", ":"))


def ranges_from_json(value: str) -> list[PartitionRange]:
    ranges = (PartitionRange(int(p), int(start), int(end)) for p, (start, end) in json.loads(value).items())
    return sorted(ranges, key=lambda r: r.partition)


class WindowNotClosed(RuntimeError):
    """The window's end (plus grace) has not passed yet: its offset range is not final."""


def ensure_topics(
    admin: AdminClient, specs: Iterable[TopicSpec], timeout_s: float = 30, replication_factor: int = 1
) -> list[str]:
    """Create missing topics (`replication_factor` replicas each) and apply their configs; existing topics
    keep their data and their replicas. Idempotent.

    Returns the names created. A topic with fewer partitions than specified is grown (Kafka cannot
    shrink one); configs are applied incrementally so other settings stay untouched.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [s for s in specs if s.name not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor,
                      config=s.config) for s in missing],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    for spec in specs:
        if spec.name in existing and len(existing[spec.name].partitions) < spec.partitions:
            admin.create_partitions([NewPartitions(spec.name, spec.partitions)])[spec.name].result()
        if spec.name in existing and spec.config:
            resource = ConfigResource(
                ConfigResource.Type.TOPIC,
                spec.name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in spec.config.items()
                ],
            )
            for future in admin.incremental_alter_configs([resource]).values():
                future.result()
    return created


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster of the platform. Sensors use it for offsets only; producers for publishing."""

    bootstrap_servers: str
    request_timeout_s: float = 10.0
    # transport security (KAFKA_SECURITY): file names, never a password, so this config may show in the UI
    security_protocol: str = "plaintext"
    sasl_username: str | None = None
    sasl_password_file: str | None = None
    ssl_ca_location: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **fields) -> KafkaResource:
        """The platform's Kafka as `settings` describe it: bootstrap servers and transport security."""
        t = settings.kafka_transport
        security = {} if not t.secured else {
            "security_protocol": t.protocol,
            "sasl_username": t.username,
            "sasl_password_file": str(t.password_file),
            "ssl_ca_location": None if t.ca_file is None else str(t.ca_file),
        }
        return cls(bootstrap_servers=settings.kafka_bootstrap, **security, **fields)

    @property
    def transport(self) -> KafkaTransport:
        if self.security_protocol == "plaintext":
            return KafkaTransport()
        return KafkaTransport(
            protocol=self.security_protocol,
            username=self.sasl_username,
            password_file=None if self.sasl_password_file is None else Path(self.sasl_password_file),
            ca_file=None if self.ssl_ca_location is None else Path(self.ssl_ca_location),
        )

    def client_config(self) -> dict[str, str]:
        """bootstrap.servers plus the transport settings, as every librdkafka client here takes them."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.transport.librdkafka()}

    def java_config(self) -> dict[str, str]:
        """The transport settings as Java client properties (Spark's Kafka source, prefixed `kafka.`)."""
        return self.transport.java()

    def admin(self, **overrides) -> AdminClient:
        """An admin client; `overrides` are librdkafka settings (e.g. {"log_level": 0})."""
        return AdminClient({**self.client_config(), **overrides})

    def producer(self, **overrides) -> Producer:
        """An idempotent producer (acks=all): a retry never duplicates a message."""
        return Producer(
            {
                **self.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **overrides,
            }
        )

    def consumer(self, group_id: str, **overrides) -> Consumer:
        """A consumer in `group_id` that commits only when told to (auto-commit off)."""
        return Consumer(
            {
                **self.client_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **overrides,
            }
        )

    def reachable(self, timeout_s: float = 3.0) -> bool:
        """The cluster answers a metadata request."""
        try:
            self.admin(log_level=0).list_topics(timeout=timeout_s)
            return True
        except KafkaException:
            return False

    def brokers(self, timeout_s: float = 3.0) -> int:
        """How many brokers the cluster's metadata lists (0 if it does not answer)."""
        try:
            return len(self.admin(log_level=0).list_topics(timeout=timeout_s).brokers)
        except KafkaException:
            return 0

    def group_consuming(self, group_id: str, timeout_s: float = 2.0) -> bool:
        """The consumer group is stable with at least one member (its partitions are being read)."""
        from confluent_kafka import ConsumerGroupState

        admin = self.admin(log_level=0)  # a probe: quiet, and kept alive until its future resolves
        try:
            future = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)[group_id]
            group = future.result(timeout=timeout_s + 5)
        except (KafkaException, TimeoutError):
            return False
        return group.state == ConsumerGroupState.STABLE and len(group.members) > 0

    @contextmanager
    def offset_reader(self, topic: str) -> Iterator[OffsetReader]:
        """One metadata connection for many offset look-ups on `topic` (e.g. a whole sensor tick)."""
        # A consumer used only for metadata and offset look-ups: it never subscribes, never fetches
        # payloads and never commits (auto-commit is off and no group is ever joined).
        client = self.consumer("lakehouse-offset-queries")
        try:
            metadata = client.list_topics(topic, timeout=self.request_timeout_s)
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                raise KafkaException(info.error if info else f"topic {topic} not found")
            yield OffsetReader(client, topic, sorted(info.partitions), self.request_timeout_s)
        finally:
            client.close()

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        with self.offset_reader(topic) as reader:
            return reader.watermarks()

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        with self.offset_reader(topic) as reader:
            return reader.offsets_for_times(timestamp_ms)

    def window_ranges(self, topic: str, start_ms: int, end_ms: int, grace_ms: int) -> list[PartitionRange]:
        with self.offset_reader(topic) as reader:
            return reader.window_ranges(start_ms, end_ms, grace_ms)


@dataclass
class OffsetReader:
    """Offset look-ups on one topic through one client."""

    client: Consumer
    topic: str
    partitions: list[int]
    timeout_s: float

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """partition -> (low, high) offsets; high is the offset the next message will get."""
        return {
            p: self.client.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout_s)
            for p in self.partitions
        }

    def offsets_for_times(self, timestamp_ms: int) -> dict[int, int]:
        """partition -> first offset whose broker timestamp is >= timestamp_ms, or -1 if none yet."""
        query = [TopicPartition(self.topic, p, timestamp_ms) for p in self.partitions]
        return {tp.partition: tp.offset for tp in self.client.offsets_for_times(query, timeout=self.timeout_s)}

    def window_ranges(self, start_ms: int, end_ms: int, grace_ms: int, now_ms: int | None = None) -> list[PartitionRange]:
        """The exact offsets [start, end) per partition of the messages with broker timestamp in
        [start_ms, end_ms). Needs LogAppendTime (timestamps monotonic per partition).

        The range is final once broker time has passed `end_ms`: no message appended later can carry an
        earlier timestamp. `grace_ms` covers the clock difference between this host and the broker.
        Watermarks are read *before* the time look-ups, so a partition with nothing at or after `end_ms`
        ends at a high watermark that can only hold messages older than `end_ms`.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if now_ms < end_ms + grace_ms:
            raise WindowNotClosed(
                f"window [{start_ms}, {end_ms}) of {self.topic} closes at {end_ms + grace_ms} ms (broker time); "
                f"now is {now_ms}"
            )
        high = {p: marks[1] for p, marks in self.watermarks().items()}
        starts = self.offsets_for_times(start_ms)
        ends = self.offsets_for_times(end_ms)
        return [PartitionRange(p, _or_high(starts[p], high[p]), _or_high(ends[p], high[p])) for p in self.partitions]

    def boundary(self, timestamp_ms: int, high: dict[int, int]) -> dict[int, int]:
        """partition -> offset of the first message at or after timestamp_ms (high watermark if none)."""
        return {p: _or_high(o, high[p]) for p, o in self.offsets_for_times(timestamp_ms).items()}


def _or_high(offset: int, high: int) -> int:
    return offset if offset >= 0 else high
