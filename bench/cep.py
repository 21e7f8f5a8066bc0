"""What the two CEP benchmarks share: a stack with the CEP job and the alert loader, alert collection,
scoring against simulator ground truth, percentiles."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from alerts.scoring import RuleScore, rule_counts, score, subject  # noqa: F401 (the benches import them from here)
from bench.common import Services
from contract.topics import SECURITY_ALERTS
from settings import Settings
from stack.procs import free_port, group_members, wait_until
from stack.services import AlertLoader, FlinkCEP

OCCURRED_AT = re.compile(rb'"occurred_at":(\d+)')


@dataclass
class CepStack:
    services: Services
    cfg: Settings
    job: FlinkCEP
    loader: AlertLoader

    @property
    def bootstrap(self) -> str:
        return self.cfg.kafka_bootstrap

    @property
    def postgres_url(self) -> str:
        return self.cfg.postgres_url

    def job_rest(self, path: str) -> dict:
        info = self.job.job_info()
        return requests.get(f"{info['rest_url']}/jobs/{info['job_id']}{path}", timeout=10).json()

    def records_read(self) -> int:
        """Events the job's Kafka source has read so far."""
        source = self.job_rest("")["vertices"][0]["id"]
        metric = self.job_rest(f"/vertices/{source}/subtasks/metrics?get=numRecordsIn")
        return int(metric[0]["sum"]) if metric else 0

    def checkpoints(self) -> list[dict]:
        return [
            {"id": c["id"], "duration_ms": c["end_to_end_duration"], "size_mb": round(c["checkpointed_size"] / 1e6, 1),
             "status": c["status"]}
            for c in reversed(self.job_rest("/checkpoints").get("history", []))
        ]

    def job_cpu_seconds(self) -> float:
        """CPU time used so far by the job's process group (the JVM and its Python driver)."""
        pid = self.services.supervisor.pid(self.job.name)
        total = 0
        for member in group_members(pid) if pid else []:
            try:
                fields = Path(f"/proc/{member}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def cep_stack(job_env: dict[str, str] | None = None) -> Iterator[CepStack]:
    """Kafka, PostgreSQL, the CEP job (embedded mini-cluster) and the loader, on free ports."""
    with Services(kafka=True, postgres=True) as services:
        cfg = services.cfg.but(flink_rest_port=free_port())
        job = FlinkCEP(cfg, env=job_env)
        loader = AlertLoader(cfg)
        started = []
        try:
            for service in (loader, job):
                service.install()
                service.prepare()
                started.append(service)
                services.supervisor.start(service.spec())
            yield CepStack(services, cfg, job, loader)
        finally:
            for service in reversed(started):
                services.supervisor.stop(service.spec())


# ------------------------------------------------------------------------------- alert capture
def _collect(bootstrap: str, topic: str, out: mp.Queue, stop: mp.Event, ready: mp.Event) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{os.getpid()}-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.subscribe([topic])
    rows = []
    while not stop.is_set():
        for msg in consumer.consume(500, 0.05):
            if msg.error() is None:
                rows.append((msg.value(), msg.timestamp()[1], time.time() * 1000))
        if not ready.is_set() and consumer.assignment():
            ready.set()
    consumer.close()
    out.put(rows)


class AlertCapture:
    """Every alert on the topic with the time a consumer saw it, from a separate process (so that the
    producer's pacing never delays it)."""

    def __init__(self, bootstrap: str, topic: str = SECURITY_ALERTS):
        ctx = mp.get_context("spawn")
        self._queue, self._stop, ready = ctx.Queue(), ctx.Event(), ctx.Event()
        self._process = ctx.Process(target=_collect, args=(bootstrap, topic, self._queue, self._stop, ready), daemon=True)
        self._process.start()
        ready.wait(30)

    def stop(self) -> list[dict]:
        self._stop.set()
        rows = self._queue.get(timeout=60)
        self._process.join(10)
        alerts = []
        for value, record_ts, seen_ms in rows:
            alert = json.loads(value)
            alert["_record_ts"], alert["_seen_ms"] = record_ts, seen_ms
            alerts.append(alert)
        return alerts


def stored_alerts(postgres_url: str) -> dict[str, dict]:
    with psycopg.connect(postgres_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT alert_id, rule, user_id, ip, stored_at, "
            "(extract(epoch FROM stored_at) * 1000)::bigint AS stored_ms FROM security_alerts").fetchall()
    return {r["alert_id"]: r for r in rows}


def wait_for_quiet(read: callable, settle_s: float, timeout_s: float) -> bool:
    """Until `read()` stops changing for settle_s seconds."""
    last, since = read(), time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return True
    return False


def wait_until_read(stack: CepStack, count: int, timeout_s: float) -> bool:
    return wait_until(lambda: stack.records_read() >= count, timeout_s, 0.5)


# ------------------------------------------------------------------------------------ figures
def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pct(p: float) -> float:  # nearest-rank
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": ordered[-1]}


def format_percentiles(name: str, values: list[float]) -> str:
    p = percentiles(values)
    if not p:
        return f"{name:<38} (no alerts)"
    return (f"{name:<38} n={p['n']:<4} p50={p['p50']:6.0f}  p95={p['p95']:6.0f}  p99={p['p99']:6.0f}  "
            f"max={p['max']:6.0f} ms")
