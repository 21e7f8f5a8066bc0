"""What each endpoint returns, assembled from the sources: one `Dashboard` per process owns the
connections and the short-lived caches every request and stream shares.

A source that is down turns only its part into `unavailable` (with the reason); an empty table turns it into
`none_yet`. Blocking clients (Kafka, HTTP, delta-rs) run in worker threads."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from alerts.loader import GROUP_ID as ALERT_LOADER_GROUP
from analytics_defs.constants import BRONZE_QUARANTINE_TABLE
from contract.topics import USER_EVENTS
from dashboard import models
from dashboard.cache import Cached, KeyedCache
from dashboard.feed import AlertFeed
from dashboard.models import encode_as
from dashboard.sources import Unavailable, dagster, published, quarantine, spark
from dashboard.sources import alerts as alert_rows
from dashboard.sources import kafka as kafka_info
from dashboard.sources.database import Database
from dashboard.sources.health import HealthChecker, flink_settings
from dashboard.sources.mlflow import champion_version
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from settings import Settings


async def part(build: Callable[[], Awaitable[dict]], **empty) -> dict:
    """`build()` with status ok, or the same part marked unavailable with the reason."""
    try:
        return {"status": "ok", "message": None, **await build()}
    except Unavailable as exc:
        return {"status": "unavailable", "message": str(exc), **empty}


class Dashboard:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = Database.for_settings(settings)
        self.kafka = KafkaResource.from_settings(settings, request_timeout_s=3.0)
        self.feed = AlertFeed(self.db, settings.dashboard_db_url)
        self.health_checker = HealthChecker(settings, self.db, self.kafka)
        self.quarantine_path = WarehouseResource(root=settings.warehouse).table_path(BRONZE_QUARANTINE_TABLE)
        self.cep_group = flink_settings(settings).group_id
        self.dagster_url = f"http://{settings.host}:{settings.dagster_port}"
        self.health = Cached(self.health_checker.check, ttl_s=2.0, encode=encode_as(models.Health))
        self.metrics = Cached(self._metrics, ttl_s=1.0, encode=encode_as(models.Metrics))
        self.segments = Cached(self._segments, ttl_s=5.0, encode=encode_as(models.Segments))
        self.kafka_overview = Cached(self._kafka, ttl_s=2.0, encode=encode_as(models.KafkaInfo))
        self.spark_metrics = Cached(self._spark_metrics, ttl_s=2.0, encode=encode_as(models.SparkMetrics))
        self.alert_pages: KeyedCache[bytes] = KeyedCache(ttl_s=1.0)
        self._quarantine = Cached(self._quarantine_reasons, ttl_s=15.0)
        self.feed.on_new += [self.alert_pages.invalidate, self.metrics.invalidate]
        self._feed_task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.db.open()
        self._feed_task = asyncio.create_task(self.feed.run(), name="alert-feed")

    async def stop(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.gather(self._feed_task, return_exceptions=True)
        await self.db.close()

    # ---- /api/metrics -----------------------------------------------------------------------
    async def _metrics(self) -> dict:
        now = datetime.now(UTC)
        hour_ago = now - alert_rows.LAST_HOUR
        events, landing, quarantined, alerts, lag = await asyncio.gather(
            part(self._events, topic=USER_EVENTS),
            part(self._landing),
            part(lambda: self._quarantine_part(hour_ago), since=hour_ago),
            part(lambda: self._alert_counts(hour_ago), since=hour_ago),
            part(self._consumer_lag),
        )
        return {"generated_at": now, "events": events, "landing": landing, "quarantine": quarantined,
                "alerts": alerts, "consumer_lag": lag}

    async def _events(self) -> dict:
        sample = await asyncio.to_thread(kafka_info.event_rate, self.kafka, USER_EVENTS)
        series = [{"t": datetime.fromtimestamp(end / 1000, UTC), "events_per_second": n / kafka_info.BUCKET_S}
                  for end, n in zip(sample.bucket_ends_ms, sample.counts)]
        status = "ok" if sample.total_offsets else "none_yet"
        return {"status": status, "message": None if sample.total_offsets else "no event on the topic yet",
                "topic": USER_EVENTS, "events_per_second": series[-1]["events_per_second"],
                "events_last_minute": sample.last_minute, "total_offsets": sample.total_offsets, "series": series}

    async def _landing(self) -> dict:
        windows = await published.landed_windows(self.db)
        if not windows:
            return {"status": "none_yet", "message": "no window landed yet", "windows": []}
        return {"windows": windows}

    async def _quarantine_reasons(self) -> Counter:
        since = datetime.now(UTC) - alert_rows.LAST_HOUR
        return await asyncio.to_thread(quarantine.reasons_since, self.quarantine_path, since) or Counter()

    async def _quarantine_part(self, since: datetime) -> dict:
        totals = await published.landed_since(self.db, since)
        if not totals["windows"]:
            return {"status": "none_yet", "message": "no window landed in the last hour", "since": since}
        reasons = await self._quarantine.get()
        quarantined = int(totals["rows_quarantined"])
        counted = sum(reasons.values())
        return {
            "since": since, "rows_in": int(totals["rows_in"]), "rows_quarantined": quarantined,
            "rate": quarantined / totals["rows_in"] if totals["rows_in"] else 0.0,
            "reasons": [{"reason": r, "rows": n, "share": n / counted} for r, n in reasons.most_common()],
            "outside_partitions": await published.events_outside_partitions(self.db),
        }

    async def _alert_counts(self, since: datetime) -> dict:
        counts = await alert_rows.counts(self.db, since)
        if not counts and not await alert_rows.any_stored(self.db):
            return {"status": "none_yet", "message": "no alert yet", "since": since}
        return {"since": since, "total": sum(c["count"] for c in counts), "counts": counts}

    async def _consumer_lag(self) -> dict:
        roles = {self.cep_group: "CEP job", ALERT_LOADER_GROUP: "alert loader"}

        def read() -> list[dict]:
            topics = kafka_info.topics(self.kafka)
            groups = kafka_info.consumer_groups(self.kafka, kafka_info.end_offsets(topics), only=set(roles))
            return groups

        groups = await asyncio.to_thread(read)
        return {"groups": [
            {"group": g["group"], "role": roles[g["group"]], "state": g["state"], "members": g["members"],
             "lag": g["lag"], "topic": g["partitions"][0]["topic"] if g["partitions"] else "-"}
            for g in groups]}

    # ---- /api/segments ----------------------------------------------------------------------
    async def _segments(self) -> dict:
        try:
            run, segments = await published.latest_segments(self.db)
            anomaly = await published.latest_anomaly_scoring(self.db)
        except Unavailable as exc:
            return {"status": "unavailable", "message": str(exc)}
        if run is None:
            return {"status": "none_yet", "message": "no segmentation model has scored users yet", "anomaly": anomaly}
        users = sum(s["users"] for s in segments)
        metrics = await published.model_metrics(self.db, run["model_name"], run["model_version"])
        message = None
        try:
            champion = await asyncio.to_thread(champion_version, self.settings.mlflow_tracking_uri, run["model_name"])
        except Unavailable as exc:
            champion, message = None, f"champion alias unknown: {exc}"
        return {
            "status": "ok", "message": message, "model_name": run["model_name"],
            "model_version": run["model_version"], "champion_version": champion,
            "scored_date": run["scored_date"].isoformat(), "scored_at": run["scored_at"], "users": users,
            "segments": [{**s, "share": s["users"] / users} for s in segments], "model_metrics": metrics,
            "anomaly": anomaly,
        }

    # ---- /api/kafka -------------------------------------------------------------------------
    async def _kafka(self) -> dict:
        def read() -> dict:
            topics = kafka_info.topics(self.kafka)
            return {"topics": topics, "consumer_groups": kafka_info.consumer_groups(
                self.kafka, kafka_info.end_offsets(topics))}

        result = await part(lambda: asyncio.to_thread(read))
        return {"bootstrap_servers": self.settings.kafka_bootstrap, **result}

    # ---- /api/spark-metrics -----------------------------------------------------------------
    async def _spark_metrics(self) -> dict:
        ui = self.settings.spark_ui_url

        async def app() -> dict:
            found = await asyncio.to_thread(spark.application, ui)
            if found["app_id"] is None:
                return {"status": "none_yet", "message": "no Spark application yet", **found}
            return found

        async def runs() -> dict:
            found = await asyncio.to_thread(dagster.landing_runs, self.dagster_url)
            if not found:
                return {"status": "none_yet", "message": "no landing run yet", "runs": []}
            return {"runs": found}

        spark_part, runs_part = await asyncio.gather(part(app), part(runs))
        return {"spark": {"ui_url": ui, **spark_part}, "landing_runs": {"ui_url": self.dagster_url, **runs_part}}

    # ---- /api/alerts ------------------------------------------------------------------------
    async def alert_page(self, filters: alert_rows.AlertFilter, limit: int, cursor: str | None) -> bytes:
        """The AlertPage body (cached for a second, dropped as soon as a new alert is stored)."""
        async def build() -> bytes:
            rows, next_cursor = await alert_rows.page(self.db, filters, limit, cursor)
            status = "ok"
            if not rows and filters.empty and cursor is None:
                status = "none_yet"
            return encode_as(models.AlertPage)({"status": status, "alerts": rows, "next_cursor": next_cursor})

        return await self.alert_pages.get((filters, limit, cursor), build)

