"""A local Flink session cluster (JobManager + TaskManager from the PyFlink distribution in the Flink
virtualenv), for the tests that submit the CEP job to a cluster with FLINK_JOBMANAGER."""

from __future__ import annotations

from pathlib import Path

import requests

import jvm
from settings import Settings
from stack.procs import ProcessSpec, http_ok, port_open
from stack.services.base import Service
from stack.services.flink_cep import pyflink_home


class FlinkJobManager(Service):
    """A standalone session JobManager on localhost (`bin/jobmanager.sh start-foreground` of PyFlink).

    With `FLINK_JOBMANAGER=<host>:<rest port>` the CEP job is submitted here instead of running in its
    own mini-cluster. Ports: REST `rest_port`, RPC `rpc_port`."""

    name = "flink-jobmanager"

    def __init__(self, settings: Settings, rest_port: int, rpc_port: int, venv: Path, memory: str = "1024m"):
        super().__init__(settings)
        self.rest_port, self.rpc_port, self.venv, self.memory = rest_port, rpc_port, venv, memory

    @property
    def address(self) -> str:
        """The value for FLINK_JOBMANAGER."""
        return f"{self.settings.host}:{self.rest_port}"

    def endpoint(self) -> str:
        return f"http://{self.address}"

    def dynamic_properties(self) -> list[str]:
        props = {
            "jobmanager.rpc.address": self.settings.host,
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": self.settings.host,
            "rest.address": self.settings.host,
            "rest.bind-address": self.settings.host,
            "rest.port": self.rest_port,
            "jobmanager.memory.process.size": self.memory,
        }
        return [arg for k, v in props.items() for arg in ("-D", f"{k}={v}")]

    def _env(self) -> dict[str, str]:
        home = pyflink_home(self.venv)
        return {
            "FLINK_HOME": str(home),
            "FLINK_CONF_DIR": str(home / "conf"),
            "FLINK_LOG_DIR": str(self.settings.log_dir / "flink"),
            "FLINK_PID_DIR": str(self.settings.run_dir / "flink"),
            "FLINK_IDENT_STRING": self.name,
            "JAVA_HOME": str(jvm.java_home()),
        }

    def prepare(self) -> None:
        (self.settings.log_dir / "flink").mkdir(parents=True, exist_ok=True)
        (self.settings.run_dir / "flink").mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        home = pyflink_home(self.venv)
        return ProcessSpec(
            name=self.name,
            argv=["bash", str(home / "bin" / "jobmanager.sh"), "start-foreground", *self.dynamic_properties()],
            env=self._env(),
            ports={"rest.port": self.rest_port, "jobmanager.rpc.port": self.rpc_port},
            healthy=self.healthy,
            start_timeout_s=120,
        )

    def healthy(self) -> bool:
        return port_open(self.settings.host, self.rest_port) and http_ok(f"{self.endpoint()}/overview")


class FlinkTaskManager(FlinkJobManager):
    """A TaskManager for `FlinkJobManager` (`bin/taskmanager.sh start-foreground`)."""

    name = "flink-taskmanager"

    def __init__(self, settings: Settings, jobmanager: FlinkJobManager, slots: int = 2, memory: str = "1536m"):
        super().__init__(settings, jobmanager.rest_port, jobmanager.rpc_port, jobmanager.venv, memory)
        self.jobmanager, self.slots = jobmanager, slots

    def dynamic_properties(self) -> list[str]:
        props = {
            "jobmanager.rpc.address": self.settings.host,
            "jobmanager.rpc.port": self.rpc_port,
            "taskmanager.host": self.settings.host,
            "taskmanager.bind-host": self.settings.host,
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.process.size": self.memory,
        }
        return [arg for k, v in props.items() for arg in ("-D", f"{k}={v}")]

    def spec(self) -> ProcessSpec:
        home = pyflink_home(self.venv)
        return ProcessSpec(
            name=self.name,
            argv=["bash", str(home / "bin" / "taskmanager.sh"), "start-foreground", *self.dynamic_properties()],
            env=self._env(),
            healthy=self.healthy,
            start_timeout_s=120,
        )

    def healthy(self) -> bool:
        """Registered with the JobManager and offering its slots."""
        try:
            overview = requests.get(f"{self.jobmanager.endpoint()}/overview", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return overview.get("taskmanagers", 0) >= 1 and overview.get("slots-total", 0) >= self.slots
