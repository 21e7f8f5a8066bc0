"""The watchdog `lakehouse up` leaves behind: it restarts a service of the stack that crashed, with
backoff, and gives up loudly after repeated failures.

A service crashed when its pid file is still there (only `down` removes it) but its process is gone. The
watchdog then kills whatever is left of the process group (a launcher's children may still hold the
ports), waits for the ports, and starts the service again, waiting until it is healthy like `up` does.
Restarts back off (5 s, 10 s, 20 s ... at most 2 min); after MAX_RESTARTS within RESTART_WINDOW_S it
gives up on that service, logs it as an error and leaves it stopped, so `lakehouse status` shows a
stopped service and the restarts before it. Every restart is logged in <data>/logs/watchdog.log and
counted in <data>/run/watchdog.json, which `status` reads. `down` stops the watchdog first.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from settings import Settings
from stack.procs import ProcessSpec, Supervisor, pid_alive
from stack.services import Service, all_services

log = logging.getLogger("watchdog")

NAME = "watchdog"
CHECK_EVERY_S = 2.0
FIRST_BACKOFF_S = 5.0
MAX_BACKOFF_S = 120.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0


@dataclass
class ServiceRecord:
    restarts: int = 0  # since the stack came up
    recent: list[float] = field(default_factory=list)  # restart times within the window
    last_restart: float | None = None
    last_error: str | None = None
    gave_up: bool = False
    next_attempt: float = 0.0
    retrying: bool = False  # a restart failed: its pid file is gone, but the service is still down


def state_file(settings: Settings) -> Path:
    return settings.run_dir / f"{NAME}.json"


def read_records(settings: Settings) -> dict[str, ServiceRecord]:
    try:
        raw = json.loads(state_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {name: ServiceRecord(**record) for name, record in raw.items()}


def _write_records(settings: Settings, records: dict[str, ServiceRecord]) -> None:
    path = state_file(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({name: asdict(r) for name, r in records.items()}, indent=1))
    tmp.replace(path)


def spec(settings: Settings) -> ProcessSpec:
    """The watchdog as a process of the stack (`lakehouse watchdog`), started last by `up`."""
    # It inherits the environment `up` ran with (not the services' environment, in which every endpoint is
    # set and every service would look external), so it watches exactly what `up` started.
    return ProcessSpec(name=NAME, argv=[sys.executable, "-m", "stack.cli", "watchdog"],
                       env={"LAKEHOUSE_DATA_DIR": str(settings.data_dir)},
                       healthy=lambda: state_file(settings).exists(), start_timeout_s=30, stop_timeout_s=10)


def crashed(supervisor: Supervisor, service: Service) -> bool:
    """Its pid file is there (so `down` did not stop it) but the process is not, and no stop of it is
    under way (a service stopped on its own, as the fault drill and the backlog benchmark do, is no crash)."""
    try:
        pid = int(supervisor.pid_file(service.name).read_text().strip())
    except (OSError, ValueError):
        return False
    return not pid_alive(pid) and not supervisor.stopping_file(service.name).exists()


class Watchdog:
    def __init__(self, settings: Settings, services: list[Service] | None = None):
        self.settings = settings
        self.supervisor = Supervisor(settings.run_dir, settings.log_dir, settings.host)
        self.services = services if services is not None else [s for s in all_services(settings) if s.managed]
        self.records = {s.name: ServiceRecord() for s in self.services}

    def tick(self, now: float) -> None:
        for service in self.services:
            record = self.records[service.name]
            if record.gave_up or now < record.next_attempt:
                continue
            if not (record.retrying or crashed(self.supervisor, service)):
                continue
            self.restart(service, record, now)
        _write_records(self.settings, self.records)

    def restart(self, service: Service, record: ServiceRecord, now: float) -> None:
        record.recent = [t for t in record.recent if now - t < RESTART_WINDOW_S]
        if len(record.recent) >= MAX_RESTARTS:
            record.gave_up, record.retrying = True, False
            self.supervisor.kill(service.spec())  # leaves it stopped: status says so
            log.error("%s crashed %d times within %.0f s: giving up; see %s, then `lakehouse up`",
                      service.name, len(record.recent), RESTART_WINDOW_S, self.supervisor.log_file(service.name))
            return
        log.warning("%s crashed: restarting (restart %d)", service.name, record.restarts + 1)
        record.restarts += 1
        record.recent.append(now)
        record.last_restart = now
        try:
            self.supervisor.kill(service.spec())  # what is left of its process group, and the pid file
            service.prepare()
            self.supervisor.start(service.spec())
            record.last_error, record.next_attempt, record.retrying = None, 0.0, False
            log.info("%s restarted", service.name)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed restart, retried after a backoff
            record.last_error = str(exc).splitlines()[0][:300]
            backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (len(record.recent) - 1))
            record.next_attempt, record.retrying = time.time() + backoff, True
            log.error("%s did not come back (%s); next attempt in %.0f s", service.name, record.last_error, backoff)

    def run(self, stop: threading.Event) -> None:
        log.info("watching %s", ", ".join(s.name for s in self.services))
        _write_records(self.settings, self.records)
        while not stop.wait(CHECK_EVERY_S):
            self.tick(time.time())


def main(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Watchdog(settings).run(stop)
    return 0
