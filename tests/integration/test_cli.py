"""`lakehouse up/status/down` end to end on free ports, and the fail-fast messages of bad settings."""

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

import jvm
from settings import ConfigError, Settings
from stack.procs import free_port, group_members

pytestmark = pytest.mark.integration

LAKEHOUSE = str(Path(os.sys.executable).parent / "lakehouse")
EXTERNAL = ("POSTGRES_URL", "KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "SPARK_REMOTE", "SPARK_MASTER")


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
    env.update(
        LAKEHOUSE_DATA_DIR=str(data_dir),
        KAFKA_PORT=str(free_port()),
        KAFKA_CONTROLLER_PORT=str(free_port()),
        POSTGRES_PORT=str(free_port()),
        MLFLOW_PORT=str(free_port()),
        DAGSTER_PORT=str(free_port()),
        SPARK_CONNECT_PORT=str(free_port()),
        SPARK_DRIVER_MEMORY="1g",
        FLINK_REST_PORT=str(free_port()),
        DASHBOARD_PORT=str(free_port()),
        SIMULATOR_ENABLED="0",
    )
    env.update(extra)
    return env


def _lakehouse(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="lakehouse-cli-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)])


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    owner = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in owner:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:  # four little-endian 32-bit words
                address = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((owner[fields[9]], address.removeprefix("::ffff:"), int(hex_port, 16)))
    return found


def test_up_status_down_up_keeps_data_and_leaves_no_process(data_dir):
    env = _env(data_dir)
    cfg = Settings.from_env(env)
    try:
        first = _lakehouse(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "all services healthy" in first.stdout
        status = _lakehouse(env, "status")
        assert status.returncode == 0, status.stdout
        assert all(" healthy " in line for line in status.stdout.splitlines()), status.stdout
        with psycopg.connect(cfg.postgres_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")

        again = _lakehouse(env, "up")  # a no-op for what runs
        assert again.returncode == 0 and again.stdout.count(" running ") == 8, again.stdout

        pids = [int(p.read_text()) for p in cfg.run_dir.glob("*.pid")]
        assert len(pids) == 8  # postgres, kafka, flink-cep, alert-loader, spark, mlflow, dagster x2
        sockets = _listening([member for pid in pids for member in group_members(pid)])
        assert sockets and all(address == cfg.host for _, address, _ in sockets), sockets
        down = _lakehouse(env, "down")
        assert down.returncode == 0, down.stderr
        assert [pid for pid in pids if group_members(pid)] == []
        assert list(cfg.run_dir.glob("*.pid")) == []
        assert _lakehouse(env, "status").returncode == 1

        restarted = _lakehouse(env, "up")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        with psycopg.connect(cfg.postgres_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        _lakehouse(env, "down")


def test_unreachable_postgres_url_fails_fast_without_leaking_the_password(data_dir):
    env = _env(data_dir, POSTGRES_URL=f"postgresql://app:TopSecret@127.0.0.1:{free_port()}/analytics_db")
    result = _lakehouse(env, "up", timeout=120)
    assert result.returncode == 2
    assert "POSTGRES_URL" in result.stderr and "unreachable" in result.stderr
    assert "TopSecret" not in result.stderr + result.stdout


def test_port_in_use_fails_fast_and_names_the_setting(data_dir, postgres_url):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = _env(data_dir, POSTGRES_URL=postgres_url, KAFKA_PORT=str(port))
        result = _lakehouse(env, "up", timeout=120)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "set KAFKA_PORT" in result.stderr


def test_missing_java_fails_fast(data_dir):
    env = _env(data_dir, JAVA_HOME="/nonexistent", PATH="/nonexistent")
    result = _lakehouse(env, "setup", timeout=60)
    assert result.returncode == 2
    assert "Java 17" in result.stderr and "JAVA_HOME" in result.stderr


def test_unresolvable_maven_artifacts_fail_with_what_to_check(tmp_path):
    pom = tmp_path / "pom.xml"
    pom.write_text(jvm.POM.read_text().replace("<kafka.version>4.4.0</kafka.version>", "<kafka.version>0.0.0-none</kafka.version>"))
    with pytest.raises(ConfigError, match="Maven could not resolve the 'kafka' artifacts.*Maven Central"):
        jvm.resolve_jars(tmp_path / "lib", tmp_path / "logs", pom=pom)
    assert not (tmp_path / "lib" / ".resolved").exists()
