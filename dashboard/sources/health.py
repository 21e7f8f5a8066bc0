"""The health of every component, probed the way `lakehouse status` does (the same names, the pid files of
`lakehouse up`), but through what the dashboard may use: the read-only database login, Kafka metadata, the
Dagster GraphQL API, the Flink REST API. A probe that fails says why in `detail`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from confluent_kafka import KafkaException

from alerts.loader import GROUP_ID as ALERT_LOADER_GROUP
from dashboard.sources import Unavailable, first_line
from dashboard.sources.dagster import code_locations, daemon_statuses
from dashboard.sources.database import Database
from dashboard.sources.http import get_json
from flink_cep.settings import JOB_NAME, JobSettings, SettingsError
from resources.kafka import KafkaResource
from settings import Settings, redact
from stack.procs import Supervisor, http_ok, port_open


def flink_settings(settings: Settings) -> JobSettings:
    """The CEP job's settings (its group id, a session cluster) at this stack's host and REST port."""
    try:
        job = JobSettings.from_env()
    except SettingsError:
        job = JobSettings()
    return replace(job, rest_host=settings.host, rest_port=settings.flink_rest_port)


@dataclass(frozen=True)
class Probe:
    name: str
    required: bool
    managed: bool  # started by `lakehouse up` (a pid file tells whether it runs)
    endpoint: str | None
    ui_url: str | None
    check: Callable[[], str]  # returns a detail when healthy, raises Unavailable otherwise


class HealthChecker:
    def __init__(self, settings: Settings, db: Database, kafka: KafkaResource):
        self.settings, self.db, self.kafka = settings, db, kafka
        self.supervisor = Supervisor(settings.run_dir, settings.log_dir, settings.host)
        s = settings
        self.flink = flink_settings(s)
        self.dagster_url = f"http://{s.host}:{s.dagster_port}"
        cep = s.flink_cep_enabled
        self.probes = [
            Probe("kafka", True, s.external_kafka is None, s.kafka_bootstrap, None, self._kafka),
            *([Probe("flink-cep", True, True, self.flink.rest_url, self.flink.rest_url, self._flink),
               Probe("alert-loader", True, True, f"group {ALERT_LOADER_GROUP}", None, self._alert_loader)]
              if cep else []),
            Probe("spark-connect", True, s.external_spark_remote is None, s.spark_remote, s.spark_ui_url, self._spark),
            Probe("mlflow", True, s.external_mlflow is None, s.mlflow_tracking_uri, s.mlflow_tracking_uri, self._mlflow),
            Probe("dagster-code", True, True, f"{s.host}:{s.dagster_code_port}", None, self._dagster_code),
            Probe("dagster-webserver", True, True, self.dagster_url, self.dagster_url, self._dagster_webserver),
            Probe("dagster-daemon", True, True, None, f"{self.dagster_url}/health", self._dagster_daemon),
            *([Probe("simulator", False, True, f"{s.simulator_rate} events/s", None, self._simulator)]
              if s.simulator_enabled else []),
        ]

    async def check(self) -> dict:
        postgres = self._postgres_component()
        others = [asyncio.to_thread(self._component, probe) for probe in self.probes]
        components = await asyncio.gather(postgres, *others)
        required_down = any(c["required"] and c["state"] != "healthy" for c in components)
        any_down = any(c["state"] != "healthy" for c in components)
        status = "unhealthy" if required_down else "degraded" if any_down else "healthy"
        return {"status": status, "checked_at": datetime.now(UTC), "components": list(components)}

    async def _postgres_component(self) -> dict:
        s = self.settings
        managed = s.external_postgres_url is None
        try:
            await self.db.rows("SELECT 1")
            state, detail = "healthy", self._running("postgres", managed, "accepting connections")
        except Unavailable as exc:
            state, detail = self._down("postgres", managed, str(exc))
        return {"name": "postgres", "state": state, "required": True, "detail": detail,
                "endpoint": redact(s.dashboard_db_url), "ui_url": None}

    def _component(self, probe: Probe) -> dict:
        try:
            state, detail = "healthy", self._running(probe.name, probe.managed, probe.check())
        except Unavailable as exc:
            state, detail = self._down(probe.name, probe.managed, str(exc))
        return {"name": probe.name, "state": state, "required": probe.required, "detail": detail,
                "endpoint": probe.endpoint, "ui_url": probe.ui_url}

    def _running(self, name: str, managed: bool, detail: str) -> str:
        pid = self.supervisor.pid(name) if managed else None
        where = f"running (pid {pid})" if pid else "external" if not managed else "running"
        return f"{where}: {detail}"

    def _down(self, name: str, managed: bool, reason: str) -> tuple[str, str]:
        pid = self.supervisor.pid(name) if managed else None
        if managed and pid is None:
            return "stopped", f"stopped: {reason}"
        where = f"running (pid {pid}), unhealthy" if pid else "unhealthy"
        return "unhealthy", f"{where}: {reason}"

    # ---- probes: a detail when healthy, Unavailable otherwise --------------------------------
    def _kafka(self) -> str:
        try:
            brokers = self.kafka.admin(log_level=0).list_topics(timeout=3).brokers
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.kafka.bootstrap_servers}: {first_line(exc)}") from None
        return f"{len(brokers)} broker(s)"

    def _flink(self) -> str:
        jobs = get_json("Flink", f"{self.flink.rest_url}/jobs/overview").get("jobs", [])
        running = [j for j in jobs if j.get("name") == JOB_NAME and j.get("state") == "RUNNING"]
        if not running:
            states = sorted({j.get("state", "?") for j in jobs if j.get("name") == JOB_NAME}) or ["not submitted"]
            raise Unavailable(f"job {JOB_NAME}: {', '.join(states)}")
        return f"job {JOB_NAME} RUNNING ({running[0].get('jid', '?')[:8]})"

    def _alert_loader(self) -> str:
        if not self.kafka.group_consuming(ALERT_LOADER_GROUP):
            raise Unavailable(f"consumer group {ALERT_LOADER_GROUP} has no active member")
        return f"consumer group {ALERT_LOADER_GROUP} stable"

    def _spark(self) -> str:
        target = urlsplit(self.settings.spark_remote.replace("sc://", "http://", 1))
        if not port_open(target.hostname or "", target.port or 15002, timeout=1.0):
            raise Unavailable(f"Spark Connect does not answer at {self.settings.spark_remote}")
        try:
            apps = get_json("Spark UI", f"{self.settings.spark_ui_url}/api/v1/applications")
            return f"Spark Connect accepting; application {apps[0]['id']}" if apps else "Spark Connect accepting"
        except Unavailable:
            return "Spark Connect accepting; Spark UI not reachable"

    def _mlflow(self) -> str:
        if not http_ok(f"{self.settings.mlflow_tracking_uri}/health", timeout=2.0):
            raise Unavailable(f"MLflow does not answer /health at {self.settings.mlflow_tracking_uri}")
        return "/health OK"

    def _dagster_webserver(self) -> str:
        info = get_json("Dagster webserver", f"{self.dagster_url}/server_info")
        return f"dagster {info.get('dagster_version', '?')}"

    def _dagster_code(self) -> str:
        locations = code_locations(self.dagster_url)
        failed = [f"{loc['name']}: {(loc['error'] or 'not loaded')[:200]}" for loc in locations if not loc["loaded"]]
        if failed or not locations:
            raise Unavailable("; ".join(failed) or "no code location")
        return ", ".join(loc["name"] for loc in locations) + " loaded"

    def _dagster_daemon(self) -> str:
        statuses = daemon_statuses(self.dagster_url)
        down = [d["daemonType"] for d in statuses if d["required"] and not d["healthy"]]
        if down:
            raise Unavailable(f"daemons without a recent heartbeat: {', '.join(down)}")
        return f"{sum(1 for d in statuses if d['required'])} daemons healthy"

    def _simulator(self) -> str:
        if self.supervisor.pid("simulator") is None:
            raise Unavailable("not running")
        return "producing"
