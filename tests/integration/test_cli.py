"""`lakehouse up/status/down` end to end on free ports, and the fail-fast messages of bad settings."""

import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

import jvm
from settings import ConfigError, Settings
from stack.procs import free_port, group_members
from tests.lakehouse_cli import cli_env, lakehouse, listening

pytestmark = pytest.mark.integration

@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="lakehouse-cli-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)])


def test_up_status_down_up_keeps_data_and_leaves_no_process(data_dir):
    env = cli_env(data_dir)
    cfg = Settings.from_env(env)
    try:
        first = lakehouse(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "all services healthy" in first.stdout
        status = lakehouse(env, "status")
        assert status.returncode == 0, status.stdout
        lines = status.stdout.splitlines()
        assert all(" healthy " in line for line in lines if not line.startswith(("watchdog", "pipeline"))), status.stdout
        assert any(line.startswith("watchdog") and " running " in line for line in lines), status.stdout
        # what the pipeline has done so far, as `up` follows it on a deployment with history
        assert any(line.startswith("pipeline") and "champions segments none" in line for line in lines), status.stdout
        from stack import watchdog
        from stack.services import all_services

        watched = set(watchdog.read_records(cfg))
        assert watched == {s.name for s in all_services(cfg) if s.managed}  # every service `up` started
        with psycopg.connect(cfg.postgres_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")

        again = lakehouse(env, "up")  # a no-op for what runs
        assert again.returncode == 0 and again.stdout.count(" running ") == 10, again.stdout

        pids = [int(p.read_text()) for p in cfg.run_dir.glob("*.pid")]
        assert len(pids) == 11  # postgres, kafka, flink-cep, alert-loader, spark, mlflow, dagster x3, dashboard, watchdog
        sockets = listening([member for pid in pids for member in group_members(pid)])
        assert sockets and all(address == cfg.host for _, address, _ in sockets), sockets
        down = lakehouse(env, "down")
        assert down.returncode == 0, down.stderr
        assert [pid for pid in pids if group_members(pid)] == []
        assert list(cfg.run_dir.glob("*.pid")) == []
        assert lakehouse(env, "status").returncode == 1

        restarted = lakehouse(env, "up")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        with psycopg.connect(cfg.postgres_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        lakehouse(env, "down")


def test_unreachable_postgres_url_fails_fast_without_leaking_the_password(data_dir):
    env = cli_env(data_dir, POSTGRES_URL=f"postgresql://app:TopSecret@127.0.0.1:{free_port()}/analytics_db")
    result = lakehouse(env, "up", timeout=120)
    assert result.returncode == 2
    assert "POSTGRES_URL" in result.stderr and "unreachable" in result.stderr
    assert "TopSecret" not in result.stderr + result.stdout


def test_port_in_use_fails_fast_and_names_the_setting(data_dir, postgres_url):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = cli_env(data_dir, POSTGRES_URL=postgres_url, KAFKA_PORT=str(port))
        result = lakehouse(env, "up", timeout=120)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "set KAFKA_PORT" in result.stderr


def test_missing_java_fails_fast(data_dir):
    env = cli_env(data_dir, JAVA_HOME="/nonexistent", PATH="/nonexistent")
    result = lakehouse(env, "setup", timeout=60)
    assert result.returncode == 2
    assert "Java 17" in result.stderr and "JAVA_HOME" in result.stderr


def test_unresolvable_maven_artifacts_fail_with_what_to_check(tmp_path):
    pom = tmp_path / "pom.xml"
    pom.write_text(jvm.POM.read_text().replace("<kafka.version>4.4.0</kafka.version>", "<kafka.version>0.0.0-none</kafka.version>"))
    with pytest.raises(ConfigError, match="Maven could not resolve the 'kafka' artifacts.*Maven Central"):
        jvm.resolve_jars(tmp_path / "lib", tmp_path / "logs", pom=pom)
    assert not (tmp_path / "lib" / ".resolved").exists()
