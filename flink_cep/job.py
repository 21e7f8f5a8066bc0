"""`python -m flink_cep.job`: run the CEP job (Flink virtualenv; the staged flink_cep/ and contract/ on PYTHONPATH).

Embedded (default): the job runs in a Flink mini-cluster inside this process's JVM, with the Web UI and
REST API on FLINK_REST_PORT; the process lives as long as the job. With FLINK_JOBMANAGER=host:port the
job is submitted to that session cluster instead, and this process stays to watch it: SIGTERM cancels
the job (its checkpoints are retained), and the job failing ends the process with an error.

Either way the job restores the newest complete checkpoint of the same job version (thresholds,
ordering and topics unchanged) from FLINK_CHECKPOINT_DIR, so a crash loses nothing: events after the
checkpoint are read again and re-raise the same alerts (same ids, stored once downstream).

`--print-sql` prints the statements instead of running them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from contract.detection import DetectionThresholds
from flink_cep.checkpoints import latest_checkpoint, prune_job_dirs
from flink_cep.settings import JOB_NAME, PROCTIME, JobSettings
from flink_cep.sql import job_statements, job_version

log = logging.getLogger("flink_cep")
CONNECTOR_GLOB = "flink-sql-connector-kafka-*.jar"
TERMINAL = {"FINISHED", "CANCELED", "FAILED", "SUSPENDED"}


def connector_jars(jvm_lib_dir: Path) -> list[Path]:
    """The Kafka SQL connector resolved by jvm/pom.xml (profile flink)."""
    lib = jvm_lib_dir / "flink"
    jars = sorted(lib.glob(CONNECTOR_GLOB))
    if not jars:
        raise SystemExit(f"flink_cep: no {CONNECTOR_GLOB} in {lib}: run `lakehouse setup` to resolve it")
    return jars


def flink_config(s: JobSettings, checkpoint_dir: Path, restore: Path | None) -> dict[str, str]:
    conf = {
        "pipeline.name": JOB_NAME,
        "parallelism.default": str(s.parallelism),
        "pipeline.jars": ";".join(j.as_uri() for j in connector_jars(s.jvm_lib_dir)),
        "table.local-time-zone": "UTC",
        # idle-state retention of the windowed (OVER) operator of rapid activity: a user silent for ten
        # minutes is forgotten (any rule window is far shorter; a restart within ten minutes loses no
        # burst in progress). MATCH_RECOGNIZE state is not subject to it.
        "table.exec.state.ttl": "10 min",
        "table.exec.source.idle-timeout": f"{s.idle_timeout_ms} ms",
        "pipeline.auto-watermark-interval": f"{s.watermark_interval_ms} ms",
        "execution.buffer-timeout.interval": f"{s.buffer_timeout_ms} ms",
        "execution.checkpointing.interval": f"{s.checkpoint_interval_s} s",
        # aligned barriers: a restored CEP state never holds events that will be replayed (no
        # double-counted evidence); alignment costs nothing noticeable with two input channels
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoint_dir.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": "hashmap",
        "execution.checkpointing.incremental": "true",
        "pipeline.object-reuse": "true",
        "restart-strategy.type": "exponential-delay",
        "rest.flamegraph.enabled": "true",
    }
    if restore is not None:
        conf["execution.state-recovery.path"] = restore.as_uri()
    if s.jobmanager:
        host, _, port = s.jobmanager.split("://")[-1].rstrip("/").rpartition(":")
        conf.update({"execution.target": "remote", "rest.address": host, "rest.port": port})
    else:
        conf.update(
            {
                "execution.target": "local",
                "rest.address": s.rest_host,
                "rest.bind-address": s.rest_host,
                # the blob server (and any RPC endpoint) listens on the bind host only, not on all interfaces
                "jobmanager.bind-host": s.rest_host,
                "taskmanager.bind-host": s.rest_host,
                "taskmanager.host": s.rest_host,
                "rest.port": str(s.rest_port),
                "taskmanager.numberOfTaskSlots": str(s.parallelism),
            }
        )
    return conf


def _rest(s: JobSettings, path: str, method: str = "GET", timeout: float = 5.0) -> dict:
    req = urllib.request.Request(f"{s.rest_url}{path}", method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else {}


def cancel_running_instances(s: JobSettings) -> list[str]:
    """Session cluster: cancel earlier instances of this job still running there (a watcher process that
    died leaves its job behind), so that exactly one instance writes alerts."""
    try:
        jobs = _rest(s, "/jobs/overview").get("jobs", [])
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"flink_cep: the Flink cluster at FLINK_JOBMANAGER={s.jobmanager} does not answer: {exc}")
    cancelled = []
    for job in jobs:
        if job.get("name") == JOB_NAME and job.get("state") not in TERMINAL:
            _rest(s, f"/jobs/{job['jid']}?mode=cancel", method="PATCH")
            cancelled.append(job["jid"])
    deadline = time.monotonic() + 60
    while cancelled and time.monotonic() < deadline:
        states = {j["jid"]: j["state"] for j in _rest(s, "/jobs/overview").get("jobs", [])}
        if all(states.get(jid) in TERMINAL for jid in cancelled):
            break
        time.sleep(0.5)
    return cancelled


def run(s: JobSettings, t: DetectionThresholds, info_file: Path | None) -> int:
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    if s.jobmanager:
        for jid in cancel_running_instances(s):
            log.warning("cancelled an earlier instance %s of %s on %s", jid, JOB_NAME, s.jobmanager)
    statements = job_statements(t, s)
    version = job_version(t, s)
    version_dir = s.checkpoint_dir / version
    version_dir.mkdir(parents=True, exist_ok=True)
    restore = latest_checkpoint(version_dir)
    prune_job_dirs(version_dir, restore)
    log.info("job version %s, ordering %s, restoring from %s", version, s.time_mode, restore or "nothing")

    # The job is pure SQL: no Python UDF workers, so no loopback gRPC server for them (PyFlink would start
    # one listening on all interfaces in a mini-cluster).
    os.environ["_python_worker_execution_mode"] = "process"
    config = Configuration()
    for key, value in flink_config(s, version_dir, restore).items():
        config.set_string(key, value)
    env = TableEnvironment.create(EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build())
    for ddl in statements[:-1]:
        env.execute_sql(ddl)
    result = env.execute_sql(statements[-1])
    client = result.get_job_client()
    job_id = str(client.get_job_id())
    info = {
        "job_id": job_id,
        "pid": os.getpid(),
        "job_name": JOB_NAME,
        "version": version,
        "rest_url": s.rest_url,
        "restored_from": str(restore) if restore else None,
        "checkpoint_dir": str(version_dir),
        "time_mode": s.time_mode,
        "started_at": int(time.time() * 1000),
    }
    if info_file is not None:
        info_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(info_file)
    log.info("submitted %s as job %s; Web UI %s", JOB_NAME, job_id, s.rest_url)

    if not s.jobmanager:
        result.wait()  # the mini-cluster lives in this process: block until the job ends or we are killed
        return 0

    stopping = False

    def _cancel(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _cancel)
    signal.signal(signal.SIGINT, _cancel)
    while True:
        if stopping:
            log.info("cancelling job %s (checkpoints are retained)", job_id)
            try:
                _rest(s, f"/jobs/{job_id}?mode=cancel", method="PATCH")
            except (urllib.error.URLError, OSError) as exc:
                log.error("could not cancel job %s: %s", job_id, exc)
                return 1
            return 0
        try:
            state = _rest(s, f"/jobs/{job_id}").get("state")
        except (urllib.error.URLError, OSError) as exc:
            log.warning("cluster did not answer: %s", exc)
            state = None
        if state in TERMINAL:
            log.error("job %s ended: %s", job_id, state)
            return 1
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flink_cep.job", description=__doc__.split("\n")[0])
    parser.add_argument("--print-sql", action="store_true", help="print the job's SQL and exit")
    parser.add_argument("--info-file", type=Path, help="write job id, version and restore point here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = JobSettings.from_env()
    thresholds = DetectionThresholds.from_env()
    if args.print_sql:
        text = ";\n\n".join(job_statements(thresholds, settings)) + ";"
        for key, value in settings.kafka_properties().items():
            if key == "sasl.jaas.config":  # the statements as they run, but never the password
                text = text.replace(value, value.split(" password=")[0] + ' password="***";')
        print(text)
        return 0
    if settings.time_mode != PROCTIME:
        log.info("rowtime ordering: watermark interval %d ms, idleness %d ms",
                 settings.watermark_interval_ms, settings.idle_timeout_ms)
    return run(settings, thresholds, args.info_file)


if __name__ == "__main__":
    sys.exit(main())
