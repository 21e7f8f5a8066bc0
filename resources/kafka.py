"""Kafka: producers, topic administration and offset queries (never payloads, never group commits)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, end) of one partition: the exact slice a micro-batch reads."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


def ensure_topics(admin: AdminClient, specs: Iterable[TopicSpec], timeout_s: float = 30) -> list[str]:
    """Create missing topics and apply their configs; existing topics keep their data. Idempotent.

    Returns the names created. A topic with fewer partitions than specified is grown (Kafka cannot
    shrink one); configs are applied incrementally so other settings stay untouched.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [s for s in specs if s.name not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config) for s in missing],
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

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap_servers})

    def producer(self, **overrides) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **overrides,
            }
        )

    def _offsets_client(self) -> Consumer:
        # A consumer used only for metadata and offset look-ups: it never subscribes, never polls
        # payloads and never commits (enable.auto.commit is off and no group is joined).
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": "lakehouse-offset-queries",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )

    def partitions(self, topic: str) -> list[int]:
        metadata = self.admin().list_topics(topic, timeout=self.request_timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise KafkaException(info.error if info else f"topic {topic} not found")
        return sorted(info.partitions)

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """partition -> (low, high) offsets; high is the offset the next message will get."""
        client = self._offsets_client()
        try:
            return {
                p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=self.request_timeout_s)
                for p in self.partitions(topic)
            }
        finally:
            client.close()

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """partition -> first offset whose broker timestamp is >= timestamp_ms, or -1 if none yet."""
        client = self._offsets_client()
        try:
            query = [TopicPartition(topic, p, timestamp_ms) for p in self.partitions(topic)]
            return {tp.partition: tp.offset for tp in client.offsets_for_times(query, timeout=self.request_timeout_s)}
        finally:
            client.close()
