"""The Flink side of the stack: the CEP job's virtualenv, the job itself, the alert loader, and a local
Flink session cluster (JobManager + TaskManager from the PyFlink distribution) for scale-out and tests.

`lakehouse setup` creates the virtualenv (`ensure_flink_venv`); `all_services` starts `FlinkCEP` and
`AlertLoader` after Kafka and PostgreSQL unless FLINK_CEP_ENABLED=0. The session cluster classes are
for tests and for trying FLINK_JOBMANAGER locally.

The job's own settings (parallelism, checkpoint interval, FLINK_JOBMANAGER, thresholds …) are read by the
job from the environment (flink_cep/settings.py, contract/detection.py); `FlinkCEP(cfg, env={...})`
overrides them for one instance (tests, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from flink_cep.settings import JobSettings
from stack import jvm
from stack.config import PROJECT_ROOT, ConfigError, StackConfig
from stack.procs import ProcessSpec, port_open
from stack.services import Service

FLINK_VENV = PROJECT_ROOT / ".venv-flink"
FLINK_REQUIREMENTS = PROJECT_ROOT / "flink_cep" / "requirements.txt"
_STAMP_PREFIX = ".requirements-"


# ------------------------------------------------------------------------------------ virtualenv
def _requirements_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]


def flink_python(venv: Path = FLINK_VENV) -> Path:
    return venv / "bin" / "python"


def ensure_flink_venv(
    venv: Path = FLINK_VENV, requirements: Path = FLINK_REQUIREMENTS, log_dir: Path | None = None
) -> Path:
    """Create or update the PyFlink virtualenv from flink_cep/requirements.txt; returns its python.

    Idempotent: the venv is stamped with the requirements' hash, so a second call is a no-op and a
    changed requirements file re-installs. PyFlink lives apart from the main environment because it pins
    pandas, numpy, pyarrow and protobuf versions the main environment cannot share."""
    stamp = venv / f"{_STAMP_PREFIX}{_requirements_hash(requirements)}"
    python = flink_python(venv)
    if stamp.exists() and python.exists():
        return python
    log = (log_dir or venv.parent) / "flink-venv.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing the Flink virtualenv {venv} from {requirements} (log: {log}) ...", flush=True)
    with open(log, "ab") as out:
        if not python.exists():
            base = getattr(sys, "_base_executable", sys.executable)
            _run([base, "-m", "venv", str(venv)], out, f"creating the virtualenv {venv}")
        _run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], out,
             f"installing {requirements} into {venv}")
        check = "import pyflink, pyflink.version; print(pyflink.version.__version__)"
        _run([str(python), "-c", check], out, "importing pyflink")
    for old in venv.glob(f"{_STAMP_PREFIX}*"):
        old.unlink()
    stamp.write_text(requirements.read_text())
    return python


def _run(argv: list[str], out, what: str) -> None:
    out.write(f"\n$ {' '.join(argv)}\n".encode())
    out.flush()
    result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise ConfigError(f"{what} failed (exit {result.returncode}); see {out.name}")


def pyflink_home(venv: Path = FLINK_VENV) -> Path:
    """FLINK_HOME of the PyFlink distribution in the venv: bin/ scripts, lib/, opt/, conf/."""
    found = sorted(venv.glob("lib/python3*/site-packages/pyflink/bin/jobmanager.sh"))
    if not found:
        raise ConfigError(f"PyFlink is not installed in {venv}: run `lakehouse setup`.")
    return found[-1].parent.parent


# ------------------------------------------------------------------------------------ the CEP job
class FlinkCEP(Service):
    """The CEP job (flink_cep/job.py) in the Flink virtualenv.

    Embedded mini-cluster by default (Web UI on FLINK_REST_PORT while it runs); with FLINK_JOBMANAGER
    set, a small watcher process that submits the job to that session cluster and cancels it on stop.
    On every start the job restores the newest complete checkpoint under <data>/flink/checkpoints."""

    name = "flink-cep"

    def __init__(self, cfg: StackConfig, env: dict[str, str] | None = None, venv: Path = FLINK_VENV,
                 name: str | None = None):
        super().__init__(cfg)
        self.extra_env = dict(env or {})
        self.venv = venv
        if name:
            self.name = name  # a second instance (e.g. on a session cluster) needs its own pid and log files

    @property
    def job_env(self) -> dict[str, str]:
        """What the job process sees on top of the inherited environment."""
        return {
            **self.cfg.service_env(),
            "PYTHONPATH": str(PROJECT_ROOT),
            "LAKEHOUSE_BIND_HOST": self.cfg.host,
            "FLINK_REST_PORT": str(self.cfg.flink_rest_port),
            "FLINK_CHECKPOINT_DIR": str(self.checkpoint_dir),
            "FLINK_LOG_DIR": str(self.cfg.log_dir / "flink"),
            "JAVA_HOME": str(jvm.java_home()),
            **self.extra_env,
        }

    @property
    def settings(self) -> JobSettings:
        return JobSettings.from_env({**os.environ, **self.job_env})

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.extra_env.get("FLINK_CHECKPOINT_DIR") or self.cfg.data_dir / "flink" / "checkpoints")

    @property
    def info_file(self) -> Path:
        return self.cfg.run_dir / f"{self.name}.json"

    def endpoint(self) -> str:
        return self.settings.rest_url

    def install(self) -> None:
        ensure_flink_venv(self.venv, log_dir=self.cfg.log_dir)

    def prepare(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.cfg.log_dir / "flink").mkdir(parents=True, exist_ok=True)
        if not flink_python(self.venv).exists():
            raise ConfigError(f"The Flink virtualenv {self.venv} does not exist: run `lakehouse setup`.")

    def spec(self) -> ProcessSpec:
        s = self.settings
        env = {**self.job_env, "JVM_ARGS": f"-Xmx{s.heap} {s.jvm_opts}"}
        return ProcessSpec(
            name=self.name,
            argv=[str(flink_python(self.venv)), "-m", "flink_cep.job", "--info-file", str(self.info_file)],
            env=env,
            cwd=PROJECT_ROOT,
            ports={} if s.jobmanager else {"FLINK_REST_PORT": s.rest_port},
            healthy=self.healthy,
            start_timeout_s=240,
            stop_timeout_s=60,
        )

    def job_info(self) -> dict | None:
        """What the running job process wrote at submission: job id, version, restore point."""
        try:
            return json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        """The job submitted by the current process runs, with every task RUNNING (reading Kafka)."""
        info = self.job_info()
        pid_file = self.cfg.run_dir / f"{self.name}.pid"
        try:
            current_pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        if not info or info.get("pid") != current_pid:
            return False
        try:
            job = requests.get(f"{info['rest_url']}/jobs/{info['job_id']}", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        vertices = job.get("vertices") or []
        return job.get("state") == "RUNNING" and bool(vertices) and all(v["status"] == "RUNNING" for v in vertices)

    def check_external(self) -> None:
        jm = self.settings.jobmanager
        if jm and not _rest_ok(self.settings.rest_url):
            raise ConfigError(f"The Flink cluster at FLINK_JOBMANAGER={jm} does not answer on its REST port: "
                              "start it, or unset FLINK_JOBMANAGER to run the job in an embedded mini-cluster.")


def _rest_ok(url: str) -> bool:
    try:
        return requests.get(f"{url}/overview", timeout=2).ok
    except requests.RequestException:
        return False


# ---------------------------------------------------------------------------------- alert loader
class AlertLoader(Service):
    """`python -m alerts.loader`: security-alerts -> PostgreSQL security_alerts (main virtualenv)."""

    name = "alert-loader"

    def __init__(self, cfg: StackConfig, env: dict[str, str] | None = None, topic: str | None = None,
                 group_id: str | None = None):
        super().__init__(cfg)
        self.extra_env = dict(env or {})
        from alerts.loader import GROUP_ID
        from contract.topics import SECURITY_ALERTS

        self.topic = topic or SECURITY_ALERTS
        self.group_id = group_id or GROUP_ID

    def endpoint(self) -> str:
        return f"{self.topic} -> security_alerts (group {self.group_id})"

    def spec(self) -> ProcessSpec:
        return ProcessSpec(
            name=self.name,
            argv=[sys.executable, "-m", "alerts.loader", "--topic", self.topic, "--group-id", self.group_id],
            env={**self.cfg.service_env(), "PYTHONPATH": str(PROJECT_ROOT), **self.extra_env},
            cwd=PROJECT_ROOT,
            healthy=self.healthy,
            start_timeout_s=60,
        )

    def healthy(self) -> bool:
        """Its consumer group is stable with a member: partitions are assigned and being read."""
        from confluent_kafka import ConsumerGroupState, KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient({"bootstrap.servers": self.cfg.kafka_bootstrap})
            group = admin.describe_consumer_groups([self.group_id], request_timeout=2)[self.group_id].result()
        except KafkaException:
            return False
        return group.state == ConsumerGroupState.STABLE and len(group.members) > 0


# ------------------------------------------------------------------------- local session cluster
class FlinkJobManager(Service):
    """A standalone session JobManager on localhost (`bin/jobmanager.sh start-foreground` of PyFlink).

    With `FLINK_JOBMANAGER=<host>:<rest port>` the CEP job is submitted here instead of running in its
    own mini-cluster. Ports: REST `rest_port`, RPC `rpc_port`."""

    name = "flink-jobmanager"

    def __init__(self, cfg: StackConfig, rest_port: int, rpc_port: int, venv: Path = FLINK_VENV,
                 memory: str = "1024m"):
        super().__init__(cfg)
        self.rest_port, self.rpc_port, self.venv, self.memory = rest_port, rpc_port, venv, memory

    @property
    def address(self) -> str:
        """The value for FLINK_JOBMANAGER."""
        return f"{self.cfg.host}:{self.rest_port}"

    def endpoint(self) -> str:
        return f"http://{self.address}"

    def dynamic_properties(self) -> list[str]:
        props = {
            "jobmanager.rpc.address": self.cfg.host,
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": self.cfg.host,
            "rest.address": self.cfg.host,
            "rest.bind-address": self.cfg.host,
            "rest.port": self.rest_port,
            "jobmanager.memory.process.size": self.memory,
        }
        return [arg for k, v in props.items() for arg in ("-D", f"{k}={v}")]

    def _env(self) -> dict[str, str]:
        home = pyflink_home(self.venv)
        return {
            "FLINK_HOME": str(home),
            "FLINK_CONF_DIR": str(home / "conf"),
            "FLINK_LOG_DIR": str(self.cfg.log_dir / "flink"),
            "FLINK_PID_DIR": str(self.cfg.run_dir / "flink"),
            "FLINK_IDENT_STRING": self.name,
            "JAVA_HOME": str(jvm.java_home()),
        }

    def prepare(self) -> None:
        (self.cfg.log_dir / "flink").mkdir(parents=True, exist_ok=True)
        (self.cfg.run_dir / "flink").mkdir(parents=True, exist_ok=True)

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
        return port_open(self.cfg.host, self.rest_port) and _rest_ok(self.endpoint())


class FlinkTaskManager(FlinkJobManager):
    """A TaskManager for `FlinkJobManager` (`bin/taskmanager.sh start-foreground`)."""

    name = "flink-taskmanager"

    def __init__(self, cfg: StackConfig, jobmanager: FlinkJobManager, slots: int = 2, memory: str = "1536m"):
        super().__init__(cfg, jobmanager.rest_port, jobmanager.rpc_port, jobmanager.venv, memory)
        self.jobmanager, self.slots = jobmanager, slots

    def dynamic_properties(self) -> list[str]:
        props = {
            "jobmanager.rpc.address": self.cfg.host,
            "jobmanager.rpc.port": self.rpc_port,
            "taskmanager.host": self.cfg.host,
            "taskmanager.bind-host": self.cfg.host,
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
