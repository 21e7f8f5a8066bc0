"""The stack's configuration and process supervision, without any external service."""

import socket
import sys
import textwrap
from pathlib import Path

import pytest

from settings import ConfigError, Settings, redact, with_database
from stack.procs import ProcessSpec, StartError, Supervisor, free_port, group_members, port_open, wait_until

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


def test_a_kafka_cluster_is_three_nodes_of_one_quorum_with_replicated_topics(tmp_path):
    from stack.services import Kafka, all_services

    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path), "KAFKA_BROKERS": "3"})
    assert cfg.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert (cfg.topic_replication_factor, cfg.topic_min_insync_replicas) == (3, 2)
    nodes = [s for s in all_services(cfg) if isinstance(s, Kafka)]
    assert [(n.name, n.port, n.controller_port) for n in nodes] == [
        ("kafka", 9092, 9093), ("kafka-2", 9094, 9095), ("kafka-3", 9096, 9097)]
    props = dict(line.split("=", 1) for line in nodes[1]._server_properties().splitlines() if line)
    assert props["node.id"] == "2" and props["listeners"].startswith("PLAINTEXT://127.0.0.1:9094,")
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093,127.0.0.1:9095,127.0.0.1:9097"
    assert props["min.insync.replicas"] == "2" and props["offsets.topic.replication.factor"] == "3"
    cluster = nodes[0]._cluster()  # made once, the same for every node
    assert nodes[2]._cluster() == cluster and cluster["initial_controllers"].count("@127.0.0.1:") == 3
    single = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path / "one")})
    assert (single.kafka_bootstrap, single.topic_replication_factor, single.topic_min_insync_replicas) == (
        "127.0.0.1:9092", 1, 1)
    with pytest.raises(ConfigError, match=r"formatted for 3 broker\(s\), not KAFKA_BROKERS=1: set KAFKA_BROKERS=3"):
        Kafka(Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)}))._cluster()


def test_postgres_tls_turns_the_server_to_tls_only_and_every_url_to_verify_full(tmp_path):
    from stack.services import Postgres

    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path), "POSTGRES_TLS": "1"})
    ca = tmp_path / "secrets" / "postgres-tls" / "ca.pem"
    for url in (cfg.postgres_url, cfg.dagster_postgres_url, cfg.mlflow_postgres_url, cfg.dashboard_db_url):
        assert url.endswith(f"?sslmode=verify-full&sslrootcert={ca}"), url
    argv = Postgres(cfg).spec().argv
    assert "ssl=on" in argv and f"hba_file={tmp_path / 'postgres' / 'pg_hba_tls.conf'}" in argv
    plain = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    assert "sslmode" not in plain.postgres_url and "ssl=on" not in Postgres(plain).spec().argv


def test_kafka_cluster_settings_fail_fast_with_what_to_set():
    with pytest.raises(ConfigError, match="KAFKA_REPLICATION_FACTOR=3 needs as many brokers.*raise KAFKA_BROKERS"):
        Settings.from_env({"KAFKA_REPLICATION_FACTOR": "3"})
    with pytest.raises(ConfigError, match="Kafka node 2 listens on 9094 .* which is POSTGRES_PORT"):
        Settings.from_env({"KAFKA_BROKERS": "3", "POSTGRES_PORT": "9094"})
    with pytest.raises(ConfigError, match="overlap for 3 brokers"):
        Settings.from_env({"KAFKA_BROKERS": "3", "KAFKA_PORT": "9000", "KAFKA_CONTROLLER_PORT": "9002"})


def _server_spec(tmp_path: Path, port: int, name: str = "echo") -> ProcessSpec:
    # a parent that forks a child: stop must take the whole process group down
    script = tmp_path / f"{name}.py"
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


def test_services_stopped_together_are_all_signalled_before_any_is_waited_for(tmp_path):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    specs = [_server_spec(tmp_path, free_port(), name) for name in ("one", "two")]
    for spec in specs:
        sup.start(spec)
    pids = [sup.pid(spec.name) for spec in specs]
    assert sup.stop_together([*specs, _server_spec(tmp_path, free_port(), "never")]) == [
        "stopped", "stopped", "not running"]
    assert all(group_members(pid) == [] for pid in pids)


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


class _Echo:
    """A stand-in service for the watchdog: a real process (an HTTP server that forks a child)."""

    def __init__(self, tmp_path: Path, port: int):
        self.name = "echo"
        self.managed = True
        self._spec = _server_spec(tmp_path, port)

    def spec(self) -> ProcessSpec:
        return self._spec

    def prepare(self) -> None:
        pass


def test_watchdog_restarts_a_crashed_service_then_gives_up_loudly(tmp_path, monkeypatch):
    import os
    import signal

    from stack import watchdog

    settings = Settings(data_dir=tmp_path)
    service = _Echo(tmp_path, free_port())
    dog = watchdog.Watchdog(settings, services=[service])
    sup = dog.supervisor
    sup.start(service.spec())
    monkeypatch.setattr(watchdog, "MAX_RESTARTS", 2)
    try:
        dog.tick(now=1000.0)
        assert dog.records["echo"].restarts == 0  # healthy: nothing to do
        for restart in (1, 2):
            os.kill(sup.pid("echo"), signal.SIGKILL)  # the leader only: its child still holds nothing
            assert wait_until(lambda: watchdog.crashed(sup, service), 5)
            dog.tick(now=1000.0 + restart)
            assert dog.records["echo"].restarts == restart and sup.pid("echo") is not None
        assert watchdog.read_records(settings)["echo"].restarts == 2
        os.kill(sup.pid("echo"), signal.SIGKILL)
        assert wait_until(lambda: watchdog.crashed(sup, service), 5)
        dog.tick(now=1003.0)  # a third crash within the window: it gives up and leaves it stopped
        record = watchdog.read_records(settings)["echo"]
        assert record.gave_up and sup.pid("echo") is None and not sup.pid_file("echo").exists()
    finally:
        sup.stop(service.spec())


def test_a_service_stopped_by_down_is_not_a_crash(tmp_path):
    from stack import watchdog

    service = _Echo(tmp_path, free_port())
    dog = watchdog.Watchdog(Settings(data_dir=tmp_path), services=[service])
    dog.supervisor.start(service.spec())
    dog.supervisor.stop(service.spec())
    dog.tick(now=0.0)
    assert not watchdog.crashed(dog.supervisor, service) and dog.records["echo"].restarts == 0


def test_a_failed_restart_is_tried_again_after_its_backoff(tmp_path):
    """A restart that fails leaves no pid file (as a start that failed does); the watchdog still owes the
    service a restart and makes it after the backoff (found killing PostgreSQL: its first restart met
    the killed postmaster's lock file)."""
    import os
    import signal
    import time

    from stack import watchdog

    class _FailsOnce(_Echo):
        failures = 1

        def prepare(self) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("lock file postmaster.pid already exists")

    service = _FailsOnce(tmp_path, free_port())
    dog = watchdog.Watchdog(Settings(data_dir=tmp_path), services=[service])
    sup = dog.supervisor
    sup.start(service.spec())
    try:
        os.kill(sup.pid("echo"), signal.SIGKILL)
        assert wait_until(lambda: watchdog.crashed(sup, service), 5)
        dog.tick(now=time.time())
        record = dog.records["echo"]
        assert record.retrying and record.last_error and sup.pid("echo") is None
        dog.tick(now=time.time())  # before the backoff: nothing
        assert dog.records["echo"].restarts == 1
        dog.tick(now=record.next_attempt + 0.1)
        assert sup.pid("echo") is not None and not record.retrying and record.restarts == 2
    finally:
        sup.stop(service.spec())


def test_a_service_exiting_while_it_is_being_stopped_is_not_a_crash(tmp_path):
    """Between the stop signal and the pid file's removal the process is gone but its pid file is not:
    the stop marker keeps the watchdog from restarting what is being stopped."""
    import os
    import signal

    from stack import watchdog

    service = _Echo(tmp_path, free_port())
    dog = watchdog.Watchdog(Settings(data_dir=tmp_path), services=[service])
    sup = dog.supervisor
    sup.start(service.spec())
    try:
        sup.stopping_file("echo").touch()  # as stop() does before it signals
        os.kill(sup.pid("echo"), signal.SIGKILL)
        assert wait_until(lambda: sup.pid("echo") is None, 5)
        dog.tick(now=0.0)
        assert dog.records["echo"].restarts == 0
        sup.stopping_file("echo").unlink()
        assert watchdog.crashed(sup, service)  # without the marker the same exit is a crash
    finally:
        sup.stop(service.spec())
    assert not sup.stopping_file("echo").exists()
