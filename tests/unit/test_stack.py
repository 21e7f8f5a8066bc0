"""The stack's configuration and process supervision, without any external service."""

import socket
import sys
import textwrap
from pathlib import Path

import pytest

from settings import ConfigError, Settings, redact, with_database
from stack.procs import ProcessSpec, StartError, Supervisor, free_port, group_members, port_open

pytestmark = pytest.mark.unit


def test_defaults_are_local_and_managed(tmp_path):
    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path / ".lakehouse")})
    assert cfg.kafka_bootstrap == "127.0.0.1:9092"
    assert cfg.postgres_url == "postgresql://lakehouse@127.0.0.1:5433/analytics_db"
    assert cfg.dagster_postgres_url.endswith("/dagster")
    assert cfg.spark_remote == "sc://127.0.0.1:15002"
    assert cfg.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert cfg.data_dir.is_absolute() and cfg.data_dir.name == ".lakehouse"


def test_external_endpoints_switch_services_to_unmanaged():
    cfg = Settings.from_env(
        {"POSTGRES_URL": "postgresql://app:s3cret@db.internal:5432/analytics", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"}
    )
    assert cfg.kafka_bootstrap == "k1:9092,k2:9092"
    assert cfg.mlflow_postgres_url == "postgresql://app:s3cret@db.internal:5432/mlflow"
    assert cfg.dagster_postgres_url == "postgresql://app:s3cret@db.internal:5432/dagster"


def test_redact_hides_passwords_only():
    assert redact("postgresql://app:s3cret@db:5432/x?sslmode=require") == "postgresql://app:***@db:5432/x?sslmode=require"
    assert redact("postgresql://app@db:5432/x") == "postgresql://app@db:5432/x"


def test_bad_settings_fail_fast_with_the_name_to_set():
    with pytest.raises(ConfigError, match="KAFKA_PORT"):
        Settings.from_env({"KAFKA_PORT": "ninety"})
    with pytest.raises(ConfigError, match="POSTGRES_PORT"):
        Settings.from_env({"POSTGRES_PORT": "70000"})
    with pytest.raises(ConfigError, match="POSTGRES_URL must look like"):
        with_database("mysql://u:pw@h/db", "x")
    with pytest.raises(ConfigError, match="FLINK_CEP_ENABLED"):
        Settings.from_env({"FLINK_CEP_ENABLED": "perhaps"})


def _server_spec(tmp_path: Path, port: int, name: str = "echo") -> ProcessSpec:
    # a parent that forks a child: stop must take the whole process group down
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(f"""
        import http.server, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler).serve_forever()
    """))
    return ProcessSpec(
        name=name,
        argv=[sys.executable, str(script)],
        ports={"ECHO_PORT": port},
        healthy=lambda: port_open("127.0.0.1", port),
        start_timeout_s=20,
        stop_timeout_s=5,
    )


def test_supervisor_starts_once_and_stops_the_whole_group(tmp_path):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    spec = _server_spec(tmp_path, free_port())
    assert sup.start(spec) == "started"
    pid = sup.pid("echo")
    assert pid is not None and len(group_members(pid)) == 2
    assert sup.start(spec) == "running"  # idempotent
    assert sup.stop(spec) == "stopped"
    assert group_members(pid) == []
    assert sup.stop(spec) == "not running"


def test_port_in_use_names_the_setting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        sup = Supervisor(tmp_path / "run", tmp_path / "logs")
        with pytest.raises(ConfigError, match=f"port {port} .* already in use.*set ECHO_PORT"):
            sup.start(_server_spec(tmp_path, port))


def test_a_process_that_dies_at_start_reports_its_log(tmp_path):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    spec = ProcessSpec(
        name="broken",
        argv=[sys.executable, "-c", "import sys; print('cannot bind: boom'); sys.exit(3)"],
        healthy=lambda: False,
        start_timeout_s=10,
    )
    with pytest.raises(StartError, match="(?s)exited with code 3.*cannot bind: boom"):
        sup.start(spec)
    assert sup.pid("broken") is None
