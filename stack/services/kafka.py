"""Kafka: a single KRaft broker+controller from the kafka_2.13 jars, storage formatted once."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

import jvm
from contract.topics import topic_specs
from resources.kafka import KafkaResource, ensure_topics
from settings import ConfigError
from stack.procs import LEAN_G1, ProcessSpec, port_open
from stack.services.base import Service


class Kafka(Service):
    name = "kafka"

    @property
    def managed(self) -> bool:
        return self.settings.external_kafka is None

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "kafka"

    @property
    def client(self) -> KafkaResource:
        return KafkaResource(bootstrap_servers=self.settings.kafka_bootstrap)

    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap

    def _server_properties(self) -> str:
        s = self.settings
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={s.host}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={s.user_events_partitions}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    def prepare(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._server_properties())
        (self.home / "log4j2.properties").write_text(
            "rootLogger.level=INFO\nrootLogger.appenderRef.out.ref=out\n"
            "appender.out.type=Console\nappender.out.name=out\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
            "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
        )
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool") + ["format", "--standalone", "-t", cluster_id, "-c", str(props)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ConfigError(f"Formatting Kafka storage in {self.home / 'data'} failed:\n{result.stdout}{result.stderr}")

    def _java(self, main_class: str, heap: str = "256m") -> list[str]:
        classpath = os.pathsep.join(str(j) for j in jvm.jars(self.settings.jvm_lib_dir, "kafka"))
        return [
            jvm.java_bin(),
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            classpath,
            main_class,
        ]

    def spec(self) -> ProcessSpec:
        heap = self.settings.kafka_heap
        argv = self._java("kafka.Kafka", heap)
        # a small starting heap that grows when needed and is given back when idle (G1 periodic GC)
        argv[2:2] = ["-Xms64m", *LEAN_G1, "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
        return ProcessSpec(
            name=self.name,
            argv=argv + [str(self.home / "server.properties")],
            ports={"KAFKA_PORT": self.settings.kafka_port, "KAFKA_CONTROLLER_PORT": self.settings.kafka_controller_port},
            healthy=self.healthy,
            start_timeout_s=90,
        )

    def healthy(self) -> bool:
        host, _, port = self.settings.kafka_bootstrap.split(",")[0].rpartition(":")
        return port_open(host, int(port)) and self.client.reachable()

    def check_external(self) -> None:
        if not self.healthy():
            raise ConfigError(
                f"Kafka at KAFKA_BOOTSTRAP_SERVERS={self.settings.kafka_bootstrap} does not answer. "
                "Point it at a reachable broker, or unset it to run the project's own broker."
            )

    def bootstrap(self) -> None:
        ensure_topics(self.client.admin(), topic_specs(self.settings.user_events_partitions))
