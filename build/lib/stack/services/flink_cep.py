"""The Flink CEP job (flink_cep/job.py) in its own virtualenv, as a service of the stack.

PyFlink pins pandas, numpy, pyarrow and protobuf versions the main environment cannot share, so the job
runs in `.venv-flink` (`ensure_flink_venv`, called by `lakehouse setup`). The job's code (flink_cep/ and
the contract/ it builds on, both standard library only) is staged into the run directory at each start
and put on the job's PYTHONPATH alone: the main environment's packages never leak into the job, and an
installed (non-editable) copy of the project runs the job the same way as a source checkout.

Embedded mini-cluster by default (Web UI on FLINK_REST_PORT while it runs); with FLINK_JOBMANAGER set,
a small watcher process submits the job to that session cluster and cancels it on stop. On every start
the job restores the newest complete checkpoint under <data>/flink/checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

import contract
import flink_cep
import jvm
from flink_cep.settings import JobSettings
from settings import ConfigError, Settings
from stack.procs import ProcessSpec, http_ok
from stack.services.base import Service

FLINK_REQUIREMENTS = Path(flink_cep.__file__).parent / "requirements.txt"
_STAMP_PREFIX = ".requirements-"
JOB_PACKAGES = (flink_cep, contract)  # what the job imports of the project


def flink_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_flink_venv(venv: Path, requirements: Path = FLINK_REQUIREMENTS, log_dir: Path | None = None) -> Path:
    """Create or update the PyFlink virtualenv from flink_cep/requirements.txt; returns its python.

    Idempotent: the venv is stamped with the requirements' hash, so a second call is a no-op and a
    changed requirements file re-installs."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    stamp = venv / f"{_STAMP_PREFIX}{digest}"
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


def pyflink_home(venv: Path) -> Path:
    """FLINK_HOME of the PyFlink distribution in the venv: bin/ scripts, lib/, opt/, conf/."""
    found = sorted(venv.glob("lib/python3*/site-packages/pyflink/bin/jobmanager.sh"))
    if not found:
        raise ConfigError(f"PyFlink is not installed in {venv}: run `lakehouse setup`.")
    return found[-1].parent.parent


def stage_job(target: Path) -> Path:
    """Copy the job's packages into `target` (replacing what was there); returns it for PYTHONPATH."""
    shutil.rmtree(target, ignore_errors=True)
    for package in JOB_PACKAGES:
        source = Path(package.__file__).parent
        shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


class FlinkCEP(Service):
    name = "flink-cep"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None, name: str | None = None):
        super().__init__(settings)
        self.extra_env = dict(env or {})
        if name:
            self.name = name  # a second instance (e.g. on a session cluster) needs its own pid and log files

    @property
    def venv(self) -> Path:
        return self.settings.flink_venv_dir

    @property
    def job_dir(self) -> Path:
        return self.settings.run_dir / f"{self.name}-job"

    @property
    def job_env(self) -> dict[str, str]:
        """What the job process sees on top of the inherited environment."""
        s = self.settings
        return {
            **s.service_env(),
            "PYTHONPATH": str(self.job_dir),
            "FLINK_REST_PORT": str(s.flink_rest_port),
            "FLINK_CHECKPOINT_DIR": str(self.checkpoint_dir),
            "FLINK_LOG_DIR": str(s.log_dir / "flink"),
            "JAVA_HOME": str(jvm.java_home()),
            **self.extra_env,
        }

    @property
    def job_settings(self) -> JobSettings:
        return JobSettings.from_env({**os.environ, **self.job_env})

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.extra_env.get("FLINK_CHECKPOINT_DIR") or self.settings.data_dir / "flink" / "checkpoints")

    @property
    def info_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.json"

    def endpoint(self) -> str:
        return self.job_settings.rest_url

    def install(self) -> None:
        ensure_flink_venv(self.venv, log_dir=self.settings.log_dir)

    def prepare(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.settings.log_dir / "flink").mkdir(parents=True, exist_ok=True)
        if not flink_python(self.venv).exists():
            raise ConfigError(f"The Flink virtualenv {self.venv} does not exist: run `lakehouse setup`.")
        stage_job(self.job_dir)

    def spec(self) -> ProcessSpec:
        s = self.job_settings
        return ProcessSpec(
            name=self.name,
            argv=[str(flink_python(self.venv)), "-m", "flink_cep.job", "--info-file", str(self.info_file)],
            env={**self.job_env, "JVM_ARGS": f"-Xmx{s.heap} {s.jvm_opts}"},
            cwd=self.job_dir,
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
        pid_file = self.settings.run_dir / f"{self.name}.pid"
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
        s = self.job_settings
        if s.jobmanager and not http_ok(f"{s.rest_url}/overview"):
            raise ConfigError(f"The Flink cluster at FLINK_JOBMANAGER={s.jobmanager} does not answer on its REST port: "
                              "start it, or unset FLINK_JOBMANAGER to run the job in an embedded mini-cluster.")
