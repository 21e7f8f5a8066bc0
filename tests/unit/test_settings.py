"""The settings: read once, typed, failing fast with the variable's name; and the Flink job's standard
library reader agrees with them on every name the two share."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flink_cep.settings import JobSettings
from settings import ConfigError, Settings

pytestmark = pytest.mark.unit

SHARED = {  # variable -> (main settings' value, the Flink job's value)
    "KAFKA_BOOTSTRAP_SERVERS": (lambda s: s.kafka_bootstrap, lambda j: j.bootstrap_servers),
    "LAKEHOUSE_BIND_HOST": (lambda s: s.host, lambda j: j.rest_host),
    "FLINK_REST_PORT": (lambda s: s.flink_rest_port, lambda j: j.rest_port),
    "LAKEHOUSE_JVM_LIB_DIR": (lambda s: s.jvm_lib_dir, lambda j: j.jvm_lib_dir),
    "LAKEHOUSE_DATA_DIR": (lambda s: s.data_dir / "flink" / "checkpoints", lambda j: j.checkpoint_dir),
    "KAFKA_SECURITY": (lambda s: s.kafka_transport.protocol, lambda j: j.kafka_security),
    "KAFKA_SASL_USERNAME": (lambda s: s.kafka_sasl_username, lambda j: j.sasl_username),
    "KAFKA_SASL_PASSWORD_FILE": (lambda s: s.kafka_transport.password_file, lambda j: j.sasl_password_file),
    "KAFKA_SSL_CA_FILE": (lambda s: s.kafka_transport.ca_file, lambda j: j.ssl_ca_file),
}


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "LAKEHOUSE_BIND_HOST": "10.0.0.5", "FLINK_REST_PORT": "18081"},
        {"LAKEHOUSE_DATA_DIR": "relative/data", "LAKEHOUSE_JVM_LIB_DIR": "relative/jars"},
        {"LAKEHOUSE_DATA_DIR": "/abs/data", "LAKEHOUSE_JVM_LIB_DIR": "/abs/jars", "FLINK_REST_PORT": ""},
        {"KAFKA_SECURITY": "sasl_ssl", "LAKEHOUSE_DATA_DIR": "relative/data"},
        {"KAFKA_SECURITY": "SASL_SSL", "KAFKA_BOOTSTRAP_SERVERS": "k1:9093", "KAFKA_SASL_USERNAME": "svc",
         "KAFKA_SASL_PASSWORD_FILE": "pw", "KAFKA_SSL_CA_FILE": "/etc/ca.pem"},
        {"KAFKA_SECURITY": "sasl_ssl", "KAFKA_BOOTSTRAP_SERVERS": "k1:9093"},  # the system's trust store
        {"KAFKA_SECURITY": "plaintext", "KAFKA_SASL_PASSWORD_FILE": "pw", "KAFKA_SSL_CA_FILE": "/etc/ca.pem"},
    ],
)
def test_flink_job_reads_the_shared_names_like_the_main_settings(environ, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory in both
    main, job = Settings.from_env(environ), JobSettings.from_env(environ)
    for name, (ours, theirs) in SHARED.items():
        assert ours(main) == theirs(job), name


def test_relative_data_dir_resolves_against_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"LAKEHOUSE_DATA_DIR": "d"}).data_dir == tmp_path / "d"


def test_explicit_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_PORT", "4444")
    assert Settings.from_env({}).kafka_port == 9092
    assert Settings.from_env().kafka_port == 4444


def test_wrong_values_name_the_variable():
    with pytest.raises(ConfigError, match="SIMULATOR_RATE"):
        Settings.from_env({"SIMULATOR_RATE": "fast"})
    with pytest.raises(ConfigError, match="LAKEHOUSE_PARTITIONS_START.*YYYY-MM-DD-HH:MM"):
        Settings.from_env({"LAKEHOUSE_PARTITIONS_START": "yesterday"})
    with pytest.raises(ConfigError, match="unset one of them"):
        Settings.from_env({"SPARK_MASTER": "local[2]", "SPARK_REMOTE": "sc://h:15002"})


def test_first_window_is_the_configured_start_or_the_deployment_minute(tmp_path):
    s = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    now = datetime(2026, 11, 26, 13, 7, 42, tzinfo=UTC)
    assert s.first_window(now) == datetime(2026, 11, 25, tzinfo=UTC)  # nothing ran here yet: yesterday
    s.ensure_deployment(now)
    assert s.first_window() == datetime(2026, 11, 26, 13, 7, tzinfo=UTC)
    s.ensure_deployment(datetime(2027, 1, 1, tzinfo=UTC))  # idempotent: the first start is kept
    assert json.loads(s.deployment_file.read_text())["created_at"] == "2026-11-26-13:07"
    assert s.but(partitions_start="2026-10-01-00:00").first_window() == datetime(2026, 10, 1, tzinfo=UTC)


def test_managed_postgres_password_is_generated_once_into_a_private_file(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert "@" in s.postgres_url and ":" not in s.postgres_url.split("//")[1].split("@")[0]
    password = s.ensure_postgres_password()
    assert s.ensure_postgres_password() == password and len(password) >= 24
    assert (s.postgres_password_file.stat().st_mode & 0o777) == 0o600
    assert s.postgres_url.startswith(f"postgresql://lakehouse:{password}@")
    assert Path(s.postgres_password_file).parent != Path(s.data_dir)  # kept apart from the data files
