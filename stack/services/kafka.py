"""Kafka: KRaft nodes (each a broker and a controller) from the kafka_2.13 jars, storage formatted once.

One node by default (`--standalone` quorum). With KAFKA_BROKERS=3 every node is a service of its own
(`kafka`, `kafka-2`, `kafka-3`) and all were formatted with the same cluster id and the same
`--initial-controllers` (node@host:port:directory-id of each), kept in `<data dir>/kafka/cluster.json` so
a node restarted alone rejoins its quorum. Topics then get TOPIC replication 3 and
`min.insync.replicas=2`: with producers at acks=all, one broker may die without losing a write.

A node of a cluster is healthy once its controller listens (it cannot serve before a quorum exists, so
`up` must not wait for that before starting the next); the last node waits until every broker is
registered and creates the topics."""

from __future__ import annotations

import base64
import json
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


def _kafka_uuid() -> str:
    """A random id in Kafka's own form (base64 of 16 bytes); never with a leading '-', which the
    storage tool would read as an option."""
    while (value := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return value


class Kafka(Service):
    def __init__(self, settings, node: int = 1):
        super().__init__(settings)
        self.node = node
        _, self.port, self.controller_port = settings.kafka_nodes[node - 1]
        self.name = "kafka" if node == 1 else f"kafka-{node}"

    @property
    def managed(self) -> bool:
        return self.settings.external_kafka is None

    @property
    def clustered(self) -> bool:
        return self.settings.kafka_brokers > 1

    @property
    def last(self) -> bool:
        return self.node == self.settings.kafka_brokers

    @property
    def home(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def client(self) -> KafkaResource:
        return KafkaResource(bootstrap_servers=self.settings.kafka_bootstrap)

    def endpoint(self) -> str:
        return f"{self.settings.host}:{self.port}" if self.managed else self.settings.kafka_bootstrap

    def _server_properties(self) -> str:
        s = self.settings
        quorum = ",".join(f"{s.host}:{controller}" for _, _, controller in s.kafka_nodes)
        replicas, min_isr = s.topic_replication_factor, s.topic_min_insync_replicas
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node}",
                f"controller.quorum.bootstrap.servers={quorum}",
                f"listeners=PLAINTEXT://{s.host}:{self.port},CONTROLLER://{s.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{s.host}:{self.port},CONTROLLER://{s.host}:{self.controller_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={s.user_events_partitions}",
                "auto.create.topics.enable=false",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=4",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "unclean.leader.election.enable=false",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    def _cluster(self) -> dict:
        """The cluster id and the initial controllers every node is formatted with (made once)."""
        path = self.settings.data_dir / "kafka" / "cluster.json"
        s = self.settings
        if path.exists():
            cluster = json.loads(path.read_text())
            if cluster["brokers"] != s.kafka_brokers:
                raise ConfigError(
                    f"the Kafka storage in {s.data_dir} was formatted for {cluster['brokers']} broker(s), not "
                    f"KAFKA_BROKERS={s.kafka_brokers}: set KAFKA_BROKERS={cluster['brokers']}, or start from a new "
                    "data dir (`make reset` or another LAKEHOUSE_DATA_DIR)"
                )
            return cluster
        if (s.data_dir / "kafka" / "data" / "meta.properties").exists():  # a single broker made before cluster.json
            if s.kafka_brokers > 1:
                raise ConfigError(
                    f"the Kafka storage in {s.data_dir} holds a single broker: set KAFKA_BROKERS=1, or start a "
                    "cluster from a new data dir (`make reset` or another LAKEHOUSE_DATA_DIR)"
                )
            return {"brokers": 1}
        cluster = {
            "brokers": s.kafka_brokers,
            "cluster_id": _kafka_uuid(),
            "initial_controllers": ",".join(f"{n}@{s.host}:{controller}:{_kafka_uuid()}"
                                            for n, _, controller in s.kafka_nodes),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cluster))
        return cluster

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
        cluster = self._cluster()
        if (self.home / "data" / "meta.properties").exists():
            return
        quorum = (["--initial-controllers", cluster["initial_controllers"]] if self.clustered else ["--standalone"])
        result = subprocess.run(
            self._java("kafka.tools.StorageTool") + ["format", *quorum, "-t", cluster["cluster_id"], "-c", str(props)],
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
            # node n's ports follow from these two settings
            ports={"KAFKA_PORT": self.port, "KAFKA_CONTROLLER_PORT": self.controller_port},
            healthy=self.healthy,
            start_timeout_s=90,
        )

    def healthy(self) -> bool:
        if not self.managed:
            host, _, port = self.settings.kafka_bootstrap.split(",")[0].rpartition(":")
            return port_open(host, int(port)) and self.client.reachable()
        if self.clustered and not self.last:
            return port_open(self.settings.host, self.controller_port)
        return port_open(self.settings.host, self.port) and self.client.brokers() >= self.settings.kafka_brokers

    def check_external(self) -> None:
        if not self.healthy():
            raise ConfigError(
                f"Kafka at KAFKA_BOOTSTRAP_SERVERS={self.settings.kafka_bootstrap} does not answer. "
                "Point it at a reachable broker, or unset it to run the project's own broker."
            )

    def bootstrap(self) -> None:
        if self.managed and not self.last:
            return  # the topics are made once every broker is up (replicas need them)
        s = self.settings
        specs = topic_specs(s.user_events_partitions, min_insync_replicas=s.topic_min_insync_replicas)
        ensure_topics(self.client.admin(), specs, replication_factor=s.topic_replication_factor)
