"""KAFKA_SECURITY: off by default (every client config exactly as before), one setting turns on SASL_SSL with
SCRAM-SHA-512 for every client (librdkafka, Spark's Kafka source, the Flink connector) and the managed broker;
passwords live in 0600 files and never in a repr, an environment, an argv or a printed statement."""

import json
import subprocess

import pytest

from contract.detection import DetectionThresholds
from flink_cep.settings import SHADED_SCRAM_LOGIN_MODULE, JobSettings
from flink_cep.sql import job_version, sink_ddl, source_ddl
from resources.kafka import KafkaResource
from settings import SCRAM_LOGIN_MODULE, ConfigError, Settings
from stack.services import Kafka
from stack.services.kafka import ensure_kafka_tls

pytestmark = pytest.mark.unit


def test_plaintext_is_the_default_and_changes_nothing(tmp_path):
    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    assert cfg.kafka_security == "plaintext" and not cfg.kafka_transport.secured
    assert cfg.kafka_client_config() == {"bootstrap.servers": "127.0.0.1:9092"}
    assert cfg.kafka_transport.java() == {}
    assert not any(k.startswith("KAFKA_S") for k in cfg.service_env())
    assert KafkaResource.from_settings(cfg) == KafkaResource(bootstrap_servers="127.0.0.1:9092")
    assert KafkaResource.from_settings(cfg).client_config() == {"bootstrap.servers": "127.0.0.1:9092"}
    job = JobSettings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    assert job.kafka_properties() == {} and "properties.s" not in source_ddl(job) + sink_ddl(job)
    props = dict(line.split("=", 1) for line in Kafka(cfg)._server_properties().splitlines() if line)
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert not any(k.startswith(("sasl.", "ssl.")) for k in props)
    assert not (tmp_path / "secrets").exists()  # nothing generated when security is off


def test_a_wrong_value_names_the_variable():
    with pytest.raises(ConfigError, match="KAFKA_SECURITY"):
        Settings.from_env({"KAFKA_SECURITY": "tls"})
    assert Settings.from_env({"KAFKA_SECURITY": " SASL_SSL "}).kafka_security == "sasl_ssl"


@pytest.fixture
def secured(tmp_path) -> Settings:
    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path), "KAFKA_SECURITY": "sasl_ssl"})
    cfg.ensure_kafka_passwords()
    return cfg


def test_every_client_form_comes_from_the_same_settings_and_no_repr_shows_the_password(secured):
    client_password, broker_password = secured.ensure_kafka_passwords()
    assert secured.ensure_kafka_passwords() == (client_password, broker_password)  # generated once
    for path in (secured.kafka_transport.password_file, secured.kafka_broker_password_file):
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    ca = str(secured.kafka_tls_dir / "ca.pem")
    assert secured.kafka_client_config() == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "lakehouse", "sasl.password": client_password, "ssl.ca.location": ca}
    java = secured.kafka_transport.java()
    assert java["sasl.jaas.config"] == (f'{SCRAM_LOGIN_MODULE} required username="lakehouse" '
                                        f'password="{client_password}";')
    assert (java["security.protocol"], java["ssl.truststore.type"], java["ssl.truststore.location"]) == (
        "SASL_SSL", "PEM", ca)
    resource = KafkaResource.from_settings(secured)
    assert resource.client_config() == secured.kafka_client_config() and resource.java_config() == java
    # the Flink job reads the same names with the standard library; its connector shades the login module
    job = JobSettings.from_env(secured.service_env())
    assert job.kafka_properties() == secured.kafka_transport.java(SHADED_SCRAM_LOGIN_MODULE)
    assert f"'properties.sasl.jaas.config' = '{SHADED_SCRAM_LOGIN_MODULE}" in source_ddl(job)
    assert "'properties.ssl.truststore.type' = 'PEM'" in sink_ddl(job)
    # the job's state layout does not depend on how it logs in
    assert job_version(DetectionThresholds(), job) == job_version(DetectionThresholds(), JobSettings.from_env({}))
    # what may be shown or handed to a child holds file names, never a password
    shown = [repr(secured), repr(secured.kafka_transport), json.dumps(secured.service_env()), repr(resource),
             json.dumps(resource.model_dump()), repr(job)]
    for text in shown:
        assert client_password not in text and broker_password not in text
    assert secured.service_env()["KAFKA_SASL_PASSWORD_FILE"] == str(secured.kafka_transport.password_file)
    # every process the stack starts is told the same, by file name
    from stack.services import all_services

    for service in all_services(secured.but(flink_cep_enabled=True, simulator_enabled=True)):
        spec = service.spec()
        if service.name in ("simulator", "alert-loader", "dashboard", "flink-cep", "dagster-daemon"):
            assert spec.env.get("KAFKA_SECURITY") == "sasl_ssl", service.name
        text = " ".join(spec.argv) + json.dumps(spec.env or {})
        assert client_password not in text and broker_password not in text, service.name


def test_the_cep_jobs_printed_sql_hides_the_password(secured, monkeypatch, capsys):
    from flink_cep.job import main

    for name, value in secured.service_env().items():
        monkeypatch.setenv(name, value)
    assert main(["--print-sql"]) == 0
    printed = capsys.readouterr().out
    client_password, _ = secured.ensure_kafka_passwords()
    assert client_password not in printed
    assert printed.count('required username="lakehouse" password="***";') == 2  # source and sink


def test_a_missing_password_file_says_what_to_set(tmp_path):
    cfg = Settings.from_env({"KAFKA_SECURITY": "sasl_ssl", "KAFKA_BOOTSTRAP_SERVERS": "k1:9093",
                             "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    assert cfg.kafka_transport.ca_file is None  # another cluster: the system's trust store
    with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD_FILE"):
        cfg.kafka_client_config()


def test_the_broker_listens_sasl_ssl_with_its_login_only_in_a_private_file(secured):
    broker = Kafka(secured)
    props = dict(line.split("=", 1) for line in broker._server_properties().splitlines() if line)
    assert props["listeners"].startswith("SASL_SSL://127.0.0.1:9092,CONTROLLER://")
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert 'username="broker"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    _, broker_password = secured.ensure_kafka_passwords()
    assert broker_password not in " ".join(broker.spec().argv)


def test_security_cannot_be_switched_on_for_a_storage_formatted_without_users(tmp_path):
    plain = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    Kafka(plain)._cluster()
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("formatted\n")
    with pytest.raises(ConfigError, match="formatted without SCRAM users.*KAFKA_SECURITY=plaintext"):
        Kafka(plain.but(kafka_security="sasl_ssl")).prepare()
    assert not (tmp_path / "secrets").exists()  # failed before making anything


def test_tls_material_is_made_once_with_private_keys_and_the_bind_host_in_the_certificate(tmp_path):
    cfg = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path), "KAFKA_SECURITY": "sasl_ssl",
                             "LAKEHOUSE_BIND_HOST": "localhost"})
    tls = ensure_kafka_tls(cfg)
    made = {p.name: p.stat().st_mtime_ns for p in tls.iterdir()}
    assert set(made) == {"ca.pem", "ca.key", "broker.pem"}
    assert ensure_kafka_tls(cfg) == tls and {p.name: p.stat().st_mtime_ns for p in tls.iterdir()} == made
    assert tls.stat().st_mode & 0o777 == 0o700
    for key in ("ca.key", "broker.pem"):
        assert (tls / key).stat().st_mode & 0o777 == 0o600
    assert (tls / "broker.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")  # Kafka's PEM key store
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tls / "ca.pem"), str(tls / "broker.pem")],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    san = subprocess.run(["openssl", "x509", "-in", str(tls / "broker.pem"), "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.1" in san and "DNS:localhost" in san
