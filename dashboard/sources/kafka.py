"""Kafka as the dashboard shows it: events in per second from broker timestamps, topics with their
offsets, consumer groups with their lag. Offsets and metadata only: nothing here reads a payload or
commits for a group. Blocking calls (confluent-kafka); the routes run them in a worker thread."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from dashboard.sources import Unavailable, first_line
from resources.kafka import KafkaResource

BUCKET_S = 10
SERIES_BUCKETS = 30  # five minutes of 10-second buckets
_NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has not committed this partition


@dataclass(frozen=True)
class RateSample:
    bucket_ends_ms: list[int]
    counts: list[int]  # messages per bucket, oldest first
    last_minute: int
    total_offsets: int


def event_rate(kafka: KafkaResource, topic: str, now_ms: int | None = None) -> RateSample:
    """Messages per 10-second bucket over the last five minutes, counted between the offsets at the
    buckets' edges (`offsets_for_times` on log-append timestamps): exact, and needs no state kept here."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    edges = [now_ms - k * BUCKET_S * 1000 for k in range(SERIES_BUCKETS, -1, -1)]
    try:
        with kafka.offset_reader(topic) as reader:
            high = {p: marks[1] for p, marks in reader.watermarks().items()}
            totals = [sum(reader.boundary(edge, high).values()) for edge in edges[:-1]]
    except KafkaException as exc:
        raise Unavailable(f"Kafka at {kafka.bootstrap_servers}: {first_line(exc)}") from None
    totals.append(sum(high.values()))
    counts = [max(0, b - a) for a, b in itertools.pairwise(totals)]
    return RateSample(edges[1:], counts, sum(counts[-(60 // BUCKET_S):]), totals[-1])


def topics(kafka: KafkaResource, timeout_s: float = 5.0) -> list[dict]:
    """Every topic but Kafka's own, with low/high watermarks per partition."""
    consumer = kafka.consumer("lakehouse-dashboard-offsets", log_level=0)
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        found = []
        for name in sorted(metadata.topics):
            if name.startswith("__"):
                continue
            partitions = []
            for p in sorted(metadata.topics[name].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout_s)
                partitions.append({"partition": p, "low": low, "high": high})
            found.append({"name": name, "partitions": partitions,
                          "messages": sum(x["high"] - x["low"] for x in partitions)})
        return found
    except KafkaException as exc:
        raise Unavailable(f"Kafka at {kafka.bootstrap_servers}: {first_line(exc)}") from None
    finally:
        consumer.close()


def consumer_groups(kafka: KafkaResource, ends: dict[tuple[str, int], int], only: set[str] | None = None,
                    timeout_s: float = 5.0) -> list[dict]:
    """Consumer groups (all, or `only` these) with state, members and lag per partition against `ends`
    ((topic, partition) -> end offset). A group that committed nothing has no lag yet (null)."""
    admin = kafka.admin(log_level=0)
    try:
        if only is None:
            listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s + 5)
            names = sorted(g.group_id for g in listed.valid)
        else:
            names = sorted(only)
        if not names:
            return []
        described = admin.describe_consumer_groups(names, request_timeout=timeout_s)
        groups = []
        for name in names:
            try:
                info = described[name].result(timeout=timeout_s + 5)
                state, members = info.state.name, len(info.members)
            except KafkaException:
                state, members = "UNKNOWN", None
            offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(name)],
                                                        request_timeout=timeout_s)[name].result(timeout=timeout_s + 5)
            partitions = []
            for tp in sorted(offsets.topic_partitions or [], key=lambda t: (t.topic, t.partition)):
                end = ends.get((tp.topic, tp.partition))
                if end is None:
                    continue
                committed = tp.offset if tp.offset != _NO_OFFSET else None
                partitions.append({"topic": tp.topic, "partition": tp.partition, "committed": committed,
                                   "end": end, "lag": None if committed is None else max(0, end - committed)})
            lags = [p["lag"] for p in partitions if p["lag"] is not None]
            groups.append({"group": name, "state": state, "members": members,
                           "lag": sum(lags) if lags else None, "partitions": partitions})
        return groups
    except (KafkaException, TimeoutError) as exc:
        raise Unavailable(f"Kafka at {kafka.bootstrap_servers}: {first_line(exc)}") from None


def end_offsets(topic_list: list[dict]) -> dict[tuple[str, int], int]:
    return {(t["name"], p["partition"]): p["high"] for t in topic_list for p in t["partitions"]}
