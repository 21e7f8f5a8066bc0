"""The alert loader (`python -m alerts.loader`): security-alerts topic -> PostgreSQL security_alerts."""

from __future__ import annotations

import sys

from alerts.loader import GROUP_ID
from contract.topics import SECURITY_ALERTS
from resources.kafka import KafkaResource
from settings import PROJECT_ROOT, Settings
from stack.procs import ProcessSpec
from stack.services.base import Service


class AlertLoader(Service):
    name = "alert-loader"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None, topic: str = SECURITY_ALERTS,
                 group_id: str = GROUP_ID):
        super().__init__(settings)
        self.extra_env = dict(env or {})
        self.topic, self.group_id = topic, group_id

    def endpoint(self) -> str:
        return f"{self.topic} -> security_alerts (group {self.group_id})"

    def spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "alerts.loader", "--topic", self.topic, "--group-id", self.group_id],
            env={**self.settings.service_env(), **self.extra_env},
            cwd=PROJECT_ROOT,
            healthy=self.healthy,
            start_timeout_s=60,
        )

    def healthy(self) -> bool:
        """Its consumer group is stable with a member: partitions are assigned and being read."""
        return KafkaResource.from_settings(self.settings).group_consuming(self.group_id)
