"""Start, watch and stop the stack's processes: pid files, log files, ports and health waits.

Every service runs as a plain child process in its own session (process group), with its output in
`<data>/logs/<name>.log` and its pid in `<data>/run/<name>.pid`. `stop` signals the whole group, so a
launcher script (spark-submit, mlflow's uvicorn workers) never leaves orphans behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from settings import ConfigError

# JVM options of the stack's long-running JVMs: G1, and memory the heap does not need handed back to the
# system after a periodic collection, so an idle stack stays small (PSS) while a busy one can still grow
LEAN_G1 = ("-XX:+UseG1GC", "-XX:G1PeriodicGCInterval=60000", "-XX:MinHeapFreeRatio=10", "-XX:MaxHeapFreeRatio=30")

# console scripts of this Python environment (mlflow, dagster-webserver, ...)
VENV_BIN = Path(sys.executable).parent


class StartError(RuntimeError):
    """A service did not come up. The message says why and where its log is."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """The URL answers with a 2xx status (the health probe of every HTTP service)."""
    try:
        return requests.get(url, timeout=timeout).ok
    except requests.RequestException:
        return False


def apt_install(packages: list[str], otherwise: str) -> None:
    """Install Debian packages (as root, non-interactive); the error says what to do instead."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ConfigError(f"`{' '.join(cmd)}` failed; {otherwise}:\n{result.stderr[-2000:]}")


def write_private(path: Path, text: str, owner: str | None = None) -> None:
    """Write `path` readable by its owner only (mode 0600: it may hold a password or a key), replacing it
    atomically; owned by the OS user `owner` if given (a server that must own its key file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if owner:
        shutil.chown(tmp, owner, owner)
    os.replace(tmp, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()


@dataclass
class ProcessSpec:
    """How to run one long-lived process of the stack."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)  # setting name -> port it binds
    healthy: Callable[[], bool] = lambda: True
    start_timeout_s: float = 90.0
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 30.0
    user: str | None = None  # run as this OS user (PostgreSQL refuses to run as root)


class Supervisor:
    """Owns the pid and log files of the processes it starts under `run_dir` / `log_dir`."""

    def __init__(self, run_dir: Path, log_dir: Path, host: str = "127.0.0.1"):
        self.run_dir, self.log_dir, self.host = run_dir, log_dir, host

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def stopping_file(self, name: str) -> Path:
        """Present while `stop` stops the service: its exit then is no crash (see stack/watchdog.py)."""
        return self.run_dir / f"{name}.stopping"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self, spec: ProcessSpec) -> str:
        """Start `spec` unless it already runs; wait until healthy. Returns 'started' or 'running'."""
        if self.pid(spec.name) is not None:
            if wait_until(spec.healthy, spec.start_timeout_s):
                return "running"
            raise StartError(f"{spec.name} runs (pid {self.pid(spec.name)}) but is not healthy; "
                             f"see {self.log_file(spec.name)}")
        for setting, port in spec.ports.items():
            if port_open(self.host, port):
                raise ConfigError(
                    f"{spec.name}: port {port} on {self.host} is already in use by another process. "
                    f"Stop that process or set {setting} to a free port."
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(spec.name)
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {spec.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                start_new_session=True,
                user=spec.user,
                group=spec.user,
            )
        self.pid_file(spec.name).write_text(str(proc.pid))
        deadline = time.monotonic() + spec.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file(spec.name).unlink(missing_ok=True)
                raise StartError(
                    f"{spec.name} exited with code {proc.returncode} while starting. "
                    f"Last lines of {log_path}:\n{log_tail(log_path)}"
                )
            if spec.healthy():
                return "started"
            time.sleep(0.25)
        self.stop(spec)
        raise StartError(
            f"{spec.name} was not healthy within {spec.start_timeout_s:.0f}s. "
            f"Last lines of {log_path}:\n{log_tail(log_path)}"
        )

    def stop(self, spec: ProcessSpec) -> str:
        """Signal the process group, wait, then kill what is left. Returns 'stopped' or 'not running'."""
        return self.stop_together([spec])[0]

    def stop_together(self, specs: Sequence[ProcessSpec]) -> list[str]:
        """`stop` of several services at once: each is signalled before any is waited for (the nodes of
        a Kafka quorum: the last one stopped alone waits for the quorum that has left)."""
        running = {spec.name: self.pid(spec.name) for spec in specs}
        for spec in specs:
            if running[spec.name] is None:
                self.pid_file(spec.name).unlink(missing_ok=True)
            else:
                self.stopping_file(spec.name).touch()
        try:
            for spec in specs:
                if running[spec.name] is not None:
                    _signal_group(running[spec.name], spec.stop_signal)
            for spec in specs:
                pid = running[spec.name]
                if pid is not None:
                    if not wait_until(lambda pid=pid: not group_members(pid), spec.stop_timeout_s, 0.1):
                        _signal_group(pid, signal.SIGKILL)
                    self._gone(spec, pid)
        finally:
            for spec in specs:
                self.stopping_file(spec.name).unlink(missing_ok=True)
        return ["not running" if running[spec.name] is None else "stopped" for spec in specs]

    def kill(self, spec: ProcessSpec) -> None:
        """SIGKILL the process group at once, also when its leader is already gone (crash tests, and the
        watchdog clearing what a crashed service left before it restarts it); the pid file goes too."""
        try:
            pid = int(self.pid_file(spec.name).read_text().strip())
        except (OSError, ValueError):
            return
        _signal_group(pid, signal.SIGKILL)
        self._gone(spec, pid)

    def _gone(self, spec: ProcessSpec, pid: int) -> None:
        wait_until(lambda: not group_members(pid), 10, 0.1)
        _reap(pid)
        # the kernel may take a moment to release the listening sockets of a process that just exited
        wait_until(lambda: not any(port_open(self.host, p) for p in spec.ports.values()), 10, 0.1)
        self.pid_file(spec.name).unlink(missing_ok=True)


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (the leader may already be gone)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)  # sessions are started with start_new_session, so pgid == leader pid
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
