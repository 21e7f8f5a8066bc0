"""The simulator: simulated user traffic at a modest real-time rate, so data flows after `up`
(SIMULATOR_ENABLED=0 switches it off). Its users belong to the data directory
(<data>/simulator/population, continued on every start); on the first start it first produces
SIMULATOR_HISTORY_DAYS of their history (simulator/history.py). The ground truth of each start is written
to <data>/simulator/<run id>/ and read by `lakehouse score-alerts`."""

from __future__ import annotations

import sys

from settings import PROJECT_ROOT
from stack.procs import ProcessSpec
from stack.services.base import Service


class Simulator(Service):
    name = "simulator"

    def endpoint(self) -> str:
        return f"{self.settings.simulator_rate} events/s -> {self.settings.kafka_bootstrap}"

    @property
    def population_dir(self):
        return self.settings.data_dir / "simulator" / "population"

    def spec(self) -> ProcessSpec:
        rate = self.settings.simulator_rate
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "simulator", "--clock", "realtime", "--rate", str(rate),
                  "--users", str(self.settings.simulator_users), "--population", str(self.population_dir),
                  "--scenario-rate", str(self.settings.simulator_scenario_rate),
                  "--history-days", str(self.settings.simulator_history_days)],
            env=self.settings.service_env(),
            cwd=PROJECT_ROOT,
            healthy=self.healthy,
            start_timeout_s=60,
        )

    def healthy(self) -> bool:
        """It has connected and is producing (the line it logs once the topic is found)."""
        log = self.settings.log_dir / f"{self.name}.log"
        try:
            return "producing to" in log.read_text(errors="replace").rsplit("==== ", 1)[-1]
        except OSError:
            return False
