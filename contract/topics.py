"""Kafka topic names and their settings: the one place they are spelled."""

from __future__ import annotations

from dataclasses import dataclass, field

USER_EVENTS = "user-events"
NOTIFICATIONS = "notifications"
SECURITY_ALERTS = "security-alerts"
ANALYTICS_INSIGHTS = "analytics-insights"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(user_events_partitions: int = 2, min_insync_replicas: int = 1) -> list[TopicSpec]:
    """Every topic the stack creates at start-up.

    `user-events` uses LogAppendTime: broker timestamps are then monotonic per partition, which is
    what lets the micro-batch sensor treat a minute of broker time as a closed, reproducible window.
    `min_insync_replicas` is how many replicas an acks=all write waits for (2 on a three-broker cluster).
    """
    replicas = {"min.insync.replicas": str(min_insync_replicas)}
    return [
        TopicSpec(USER_EVENTS, user_events_partitions, {"message.timestamp.type": "LogAppendTime", **replicas}),
        TopicSpec(NOTIFICATIONS, 1, replicas),
        TopicSpec(SECURITY_ALERTS, 1, replicas),
        TopicSpec(ANALYTICS_INSIGHTS, 1, replicas),
    ]
