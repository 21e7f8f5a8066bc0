"""How the CEP job runs: Kafka endpoints, parallelism, checkpoints, time semantics, latency knobs.

Read once from the environment by `JobSettings.from_env()` (the detection thresholds themselves live in
`contract.detection.DetectionThresholds`, read from their own `CEP_*` variables). Standard library only:
the main virtualenv (stack/flink.py) and the Flink virtualenv (flink_cep/job.py) both import it.

| variable                      | default                                   | meaning                                   |
| ----------------------------- | ----------------------------------------- | ----------------------------------------- |
| KAFKA_BOOTSTRAP_SERVERS       | 127.0.0.1:9092                            | broker the job reads from and writes to   |
| FLINK_CEP_INPUT_TOPIC         | user-events                               | events topic                              |
| FLINK_CEP_ALERT_TOPIC         | security-alerts                           | alerts topic                              |
| FLINK_CEP_GROUP_ID            | lakehouse-cep                             | consumer group (offsets committed on each checkpoint; used when no checkpoint is restored) |
| FLINK_PARALLELISM             | 2                                         | parallelism of every operator             |
| FLINK_CHECKPOINT_INTERVAL_S   | 30                                        | seconds between checkpoints               |
| FLINK_CHECKPOINT_DIR          | <LAKEHOUSE_DATA_DIR>/flink/checkpoints    | retained checkpoints (one folder per job version) |
| FLINK_JOBMANAGER              | unset: embedded mini-cluster              | host:port of a session cluster's REST endpoint |
| FLINK_REST_PORT               | 8081                                      | Web UI / REST port of the embedded mini-cluster |
| LAKEHOUSE_BIND_HOST           | 127.0.0.1                                 | address the embedded Web UI binds to      |
| FLINK_CEP_TIME                | proctime                                  | proctime or rowtime (broker time + watermarks); see README |
| FLINK_BUFFER_TIMEOUT_MS       | 0                                         | network buffer flush timeout (0: flush every record) |
| FLINK_WATERMARK_INTERVAL_MS   | 10                                        | rowtime only: periodic watermark interval |
| FLINK_IDLE_TIMEOUT_MS         | 1000                                      | rowtime only: partition idleness timeout  |
| FLINK_HEAP                    | 1g                                        | heap of the embedded mini-cluster JVM     |
| FLINK_JVM_OPTS                | G1, 20 ms pause goal, periodic GC         | further JVM options of that JVM           |
| FLINK_CEP_RULES               | all five                                  | comma-separated rule names to run         |
| LAKEHOUSE_JVM_LIB_DIR         | <checkout>/jvm/lib                        | jars resolved by jvm/pom.xml (the Kafka connector) |
| KAFKA_SECURITY                | plaintext                                 | sasl_ssl: TLS + SCRAM-SHA-512 to the brokers |
| KAFKA_SASL_USERNAME           | lakehouse                                 | sasl_ssl: the SCRAM user                  |
| KAFKA_SASL_PASSWORD_FILE      | <LAKEHOUSE_DATA_DIR>/secrets/kafka-client-password | sasl_ssl: file holding its password |
| KAFKA_SSL_CA_FILE             | the managed CA (unset with KAFKA_BOOTSTRAP_SERVERS: the JVM's) | sasl_ssl: PEM trust store |

The names shared with the main settings (LAKEHOUSE_DATA_DIR, LAKEHOUSE_BIND_HOST, KAFKA_BOOTSTRAP_SERVERS,
FLINK_REST_PORT, LAKEHOUSE_JVM_LIB_DIR and the KAFKA_SECURITY family) have the same defaults and resolve
relative paths the same way (against the working directory); tests/unit/test_settings.py holds the two readers to that. The stack
passes them to the job explicitly, so the job reads exactly what `lakehouse up` decided.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contract.detection import RULE_SEVERITY
from contract.topics import SECURITY_ALERTS, USER_EVENTS

PROCTIME = "proctime"
ROWTIME = "rowtime"
JOB_NAME = "lakehouse-cep"
ALL_RULES: tuple[str, ...] = tuple(RULE_SEVERITY)
DEFAULT_DATA_DIR = ".lakehouse"
DEFAULT_JVM_LIB_DIR = Path(__file__).resolve().parent.parent / "jvm" / "lib"
KAFKA_SECURITY_CHOICES = ("plaintext", "sasl_ssl")
SCRAM_MECHANISM = "SCRAM-SHA-512"
# flink-sql-connector-kafka relocates the Kafka client: its JAAS login module has the shaded name
SHADED_SCRAM_LOGIN_MODULE = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"


class SettingsError(ValueError):
    """A setting is wrong. The message names the variable to change."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


@dataclass(frozen=True)
class JobSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = USER_EVENTS
    alert_topic: str = SECURITY_ALERTS
    group_id: str = "lakehouse-cep"
    parallelism: int = 2
    checkpoint_interval_s: int = 30
    checkpoint_dir: Path = Path(".lakehouse/flink/checkpoints")
    jobmanager: str | None = None
    rest_host: str = "127.0.0.1"
    rest_port: int = 8081
    time_mode: str = PROCTIME
    buffer_timeout_ms: int = 0
    watermark_interval_ms: int = 10
    idle_timeout_ms: int = 1000
    heap: str = "1g"
    # G1 with a short pause goal keeps alert latency low at a fraction of ZGC's footprint; the periodic
    # collection gives memory an idle job does not need back to the system
    jvm_opts: str = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:G1PeriodicGCInterval=60000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30"
    rules: tuple[str, ...] = ALL_RULES
    jvm_lib_dir: Path = DEFAULT_JVM_LIB_DIR
    # transport security: file names only, the password is read when the connector properties are built
    kafka_security: str = "plaintext"
    sasl_username: str = "lakehouse"
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> JobSettings:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("LAKEHOUSE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
        time_mode = (env.get("FLINK_CEP_TIME") or PROCTIME).strip().lower()
        if time_mode not in (PROCTIME, ROWTIME):
            raise SettingsError(f"FLINK_CEP_TIME must be {PROCTIME} or {ROWTIME}, not {time_mode!r}")
        rules = tuple(r.strip() for r in (env.get("FLINK_CEP_RULES") or "").split(",") if r.strip()) or ALL_RULES
        unknown = sorted(set(rules) - set(ALL_RULES))
        if unknown:
            raise SettingsError(f"FLINK_CEP_RULES names unknown rules {unknown}; known: {', '.join(ALL_RULES)}")
        security = (env.get("KAFKA_SECURITY") or "plaintext").strip().lower()
        if security not in KAFKA_SECURITY_CHOICES:
            raise SettingsError(f"KAFKA_SECURITY must be one of {', '.join(KAFKA_SECURITY_CHOICES)}, not {security!r}")
        secured = security != "plaintext"
        password_file = ca_file = None
        if secured:
            password_file = _path(env.get("KAFKA_SASL_PASSWORD_FILE")) or data_dir / "secrets" / "kafka-client-password"
            managed_ca = None if env.get("KAFKA_BOOTSTRAP_SERVERS") else data_dir / "secrets" / "kafka-tls" / "ca.pem"
            ca_file = _path(env.get("KAFKA_SSL_CA_FILE")) or managed_ca
        return cls(
            kafka_security=security,
            sasl_username=env.get("KAFKA_SASL_USERNAME") or cls.sasl_username,
            sasl_password_file=password_file,
            ssl_ca_file=ca_file,
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or cls.bootstrap_servers,
            input_topic=env.get("FLINK_CEP_INPUT_TOPIC") or USER_EVENTS,
            alert_topic=env.get("FLINK_CEP_ALERT_TOPIC") or SECURITY_ALERTS,
            group_id=env.get("FLINK_CEP_GROUP_ID") or cls.group_id,
            parallelism=_int(env, "FLINK_PARALLELISM", cls.parallelism, 1),
            checkpoint_interval_s=_int(env, "FLINK_CHECKPOINT_INTERVAL_S", cls.checkpoint_interval_s, 1),
            checkpoint_dir=Path(env.get("FLINK_CHECKPOINT_DIR") or data_dir / "flink" / "checkpoints").resolve(),
            jobmanager=env.get("FLINK_JOBMANAGER") or None,
            rest_host=env.get("LAKEHOUSE_BIND_HOST") or cls.rest_host,
            rest_port=_int(env, "FLINK_REST_PORT", cls.rest_port, 1),
            time_mode=time_mode,
            buffer_timeout_ms=_int(env, "FLINK_BUFFER_TIMEOUT_MS", cls.buffer_timeout_ms),
            watermark_interval_ms=_int(env, "FLINK_WATERMARK_INTERVAL_MS", cls.watermark_interval_ms, 1),
            idle_timeout_ms=_int(env, "FLINK_IDLE_TIMEOUT_MS", cls.idle_timeout_ms, 1),
            heap=env.get("FLINK_HEAP") or cls.heap,
            jvm_opts=env.get("FLINK_JVM_OPTS") or cls.jvm_opts,
            rules=rules,
            jvm_lib_dir=Path(env.get("LAKEHOUSE_JVM_LIB_DIR") or DEFAULT_JVM_LIB_DIR).expanduser().resolve(),
        )

    def kafka_properties(self) -> dict[str, str]:
        """The Kafka client's transport properties (the connector takes them prefixed `properties.`); with
        KAFKA_SECURITY=sasl_ssl they hold the password: never print them."""
        if self.kafka_security == "plaintext":
            return {}
        try:
            password = self.sasl_password_file.read_text().strip()
        except OSError:
            raise SettingsError(f"KAFKA_SECURITY={self.kafka_security} needs the password of Kafka user "
                                f"{self.sasl_username!r} in {self.sasl_password_file} (KAFKA_SASL_PASSWORD_FILE)") from None
        props = {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM_MECHANISM,
                 "sasl.jaas.config": f'{SHADED_SCRAM_LOGIN_MODULE} required username="{self.sasl_username}" '
                                     f'password="{password}";'}
        if self.ssl_ca_file is not None:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ssl_ca_file)}
        return props

    @property
    def rest_url(self) -> str:
        """The REST endpoint (and Web UI) the job is visible on: the session cluster's, or our own."""
        if self.jobmanager:
            return self.jobmanager if "://" in self.jobmanager else f"http://{self.jobmanager}"
        return f"http://{self.rest_host}:{self.rest_port}"
