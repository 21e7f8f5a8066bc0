"""Producing the simulator's stream to Kafka, counting every delivery report.

The producer is tuned for throughput without giving up durability: large lz4-compressed batches
(linger.ms, batch.size) and an idempotent producer with acks=all, so a retry never duplicates a
message; duplicates on the topic are only the ones the simulator injects on purpose. In the simulated
clock, messages are generated in chunks of pre-encoded payloads and then handed to librdkafka in a
tight loop, which sends one chunk while the next is being generated.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import islice

from confluent_kafka import KafkaError, KafkaException, Producer

from contract.topics import USER_EVENTS
from contract.user_events import UserEvent
from simulator.config import CLOCK_SIMULATED, SimulatorConfig, SimulatorConfigError
from simulator.engine import Simulator
from simulator.population_store import PopulationStore
from simulator.truth import write_ground_truth

log = logging.getLogger(__name__)

PRODUCER_CONFIG: dict[str, object] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # never let a typo in --topic create a topic with the wrong partitions or timestamp type
    "allow.auto.create.topics": False,
}
CHUNK = 50_000  # messages generated ahead of producing them, in the simulated clock
CHECKPOINT_S = 30.0  # how often a run with a population store saves the population and its ground truth
POLL_EVERY = 2_000  # produce() calls between polls for delivery reports


class Delivery:
    """Delivery-report callback: counts what the broker acknowledged and what failed, and why."""

    __slots__ = ("delivered", "errors", "failed")

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()

    def __call__(self, err: KafkaError | None, msg: object) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.errors[err.name()] += 1


def make_producer(bootstrap_servers: str, security: Mapping[str, str] | None = None, **overrides: object) -> Producer:
    """A producer with `PRODUCER_CONFIG`; `security` is the transport's librdkafka settings
    (`Settings.kafka_transport.librdkafka()`), `overrides` use librdkafka names with dots as underscores."""
    config = {**PRODUCER_CONFIG, "bootstrap.servers": bootstrap_servers, **(security or {})}
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return Producer(config)


def ensure_reachable(bootstrap_servers: str, timeout_s: float = 3.0) -> None:
    """Fail fast unless a bootstrap server accepts a TCP connection. Checked before creating a producer:
    librdkafka would retry an unreachable broker for as long as it may, logging every attempt."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError):
            continue
    raise SimulatorConfigError(_unreachable(bootstrap_servers))


def _unreachable(bootstrap_servers: str) -> str:
    return (
        f"cannot reach Kafka at {bootstrap_servers!r}: start the broker (`lakehouse up`) "
        "or set --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS"
    )


def check_topic(producer: Producer, topic: str, bootstrap_servers: str, timeout_s: float = 10.0) -> int:
    """Fail fast, saying what to set, unless the broker answers and `topic` exists; returns its partitions."""
    try:
        metadata = producer.list_topics(topic, timeout=timeout_s)
    except KafkaException:
        # the port answered (ensure_reachable) but the metadata did not: often a broker that asks for TLS
        # and a login the producer was not given
        raise SimulatorConfigError(
            _unreachable(bootstrap_servers) + "; if the broker requires TLS and a login, set KAFKA_SECURITY=sasl_ssl "
            "(and KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD_FILE / KAFKA_SSL_CA_FILE for another cluster)"
        ) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise SimulatorConfigError(
            f"topic {topic!r} does not exist on {bootstrap_servers!r}: create it (`lakehouse up` creates "
            f"{USER_EVENTS!r} with LogAppendTime) or set --topic"
        )
    return len(found.partitions)


def _send(producer: Producer, topic: str, key: bytes, value: bytes, headers: list | None, callback) -> None:
    """produce(), waiting for room when the local queue is full instead of dropping the message."""
    while True:
        try:
            if headers is None:
                producer.produce(topic, value, key, on_delivery=callback)
            else:
                producer.produce(topic, value, key, on_delivery=callback, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def run(
    config: SimulatorConfig,
    producer: Producer,
    *,
    stop: threading.Event | None = None,
    flush_timeout_s: float = 60.0,
    store: PopulationStore | None = None,
    continue_population: bool = True,
    pace: float | None = None,
    resume_after: int = 0,
    checkpoint: Callable[[int, int | None], None] | None = None,
) -> dict:
    """Produce one simulator run to `config.topic`, then write its ground truth; returns the summary.

    Stops at the configured duration or count, or when `stop` is set (flushing what was produced).
    The summary adds to the simulator's counts: produced, delivered, failed (by error), seconds spent
    generating and producing, and the resulting messages per second.

    With a `store`, the run continues the population kept there (or creates it; with
    `continue_population=False` it always builds it from the seed) and checkpoints it, with the run's
    ground truth so far, every CHECKPOINT_S seconds and at the end. `pace` caps the messages handed to
    the producer per wall-clock second (a simulated-clock run would otherwise pack days into a few broker
    minutes). The stream is deterministic in its config, so an interrupted run resumes by generating and
    not producing its first `resume_after` messages; `checkpoint(position, occurred_at)` is called after
    every periodic flush with how many messages of the stream are delivered by then and the simulated
    time reached.
    """
    stop = stop or threading.Event()
    population = store.load() if store is not None and store.exists() and continue_population else None
    sim = Simulator(config, stop=stop, idle=producer.poll, population=population)
    runs = (population.runs if population else 0) + 1
    run_id = config.resolved_run_id()
    out_dir = config.resolved_out_dir(run_id)
    delivery = Delivery()
    topic, produced, malformed_seen, position = config.topic, 0, 0, 0
    generate_s = produce_s = 0.0
    started = last_checkpoint = time.perf_counter()
    stream = sim.events()
    chunk_size = CHUNK if config.clock == CLOCK_SIMULATED else 1
    if pace is not None:
        chunk_size = max(1, min(chunk_size, int(pace)))
    if store is not None:
        store.save(sim.population(runs), clean=False)
    try:
        while True:
            if (store is not None or checkpoint is not None) and time.perf_counter() - last_checkpoint > CHECKPOINT_S:
                last_checkpoint = time.perf_counter()
                producer.flush(flush_timeout_s)  # the truth on disk never names a message still in flight
                if store is not None:
                    store.save(sim.population(runs), clean=False)
                write_ground_truth(out_dir, sim.ground_truth({"run_id": run_id, "out_dir": str(out_dir)}))
                if checkpoint is not None:
                    checkpoint(position, sim.last_ts)
            t0 = time.perf_counter()
            chunk = list(islice(stream, chunk_size))
            t1 = time.perf_counter()
            generate_s += t1 - t0
            if not chunk:
                break
            for key, value, headers, _kind in chunk:
                position += 1
                if headers is None:
                    callback = delivery
                else:  # sim.malformed[i] describes the i-th message with headers
                    record = sim.malformed[malformed_seen]
                    malformed_seen += 1
                    callback = _malformed_callback(delivery, record.on_delivery)
                if position <= resume_after:
                    continue
                _send(producer, topic, key, value, headers, callback)
                produced += 1
                if produced % POLL_EVERY == 0:
                    producer.poll(0)
            if pace is not None:  # poll() returns at the first delivery report: wait out the rest
                while (ahead := produced / pace - (time.perf_counter() - started)) > 0:
                    producer.poll(min(ahead, 0.1))
            produce_s += time.perf_counter() - t1
    finally:
        t2 = time.perf_counter()
        undelivered = producer.flush(flush_timeout_s)
        flush_s = time.perf_counter() - t2
        elapsed = time.perf_counter() - started
        summary = {
            "run_id": run_id,
            "out_dir": str(out_dir),
            "produced": produced,
            "stream_position": position,
            "delivered": delivery.delivered,
            "failed": delivery.failed,
            "undelivered_after_flush": undelivered,
            "delivery_errors": dict(delivery.errors),
            "stopped_early": stop.is_set(),
            "elapsed_s": round(elapsed, 3),
            "generate_s": round(generate_s, 3),
            "produce_s": round(produce_s, 3),
            "flush_s": round(flush_s, 3),
            "messages_per_s": round(produced / elapsed, 1) if elapsed else None,
            "produce_messages_per_s": round(produced / (produce_s + flush_s), 1)
            if produce_s + flush_s
            else None,
        }
        truth = sim.ground_truth(summary)
        write_ground_truth(out_dir, truth)
        if store is not None:
            store.save(sim.population(runs), clean=undelivered == 0)
        span_s = ((sim.last_ts or 0) - (sim.first_ts or 0)) / 1000
        if sim.sessions_skipped_busy > 0.05 * span_s:
            log.warning(
                "the %d users were too few for %s events/s in %d seconds (every user drawn was busy): "
                "raise --users (about 25 per event/s)",
                config.users,
                config.rate,
                sim.sessions_skipped_busy,
            )
    return truth.summary


def _malformed_callback(delivery: Delivery, record_callback):
    def on_delivery(err: KafkaError | None, msg: object) -> None:
        delivery(err, msg)
        record_callback(err, msg)

    return on_delivery


def produce_user_events(
    producer: Producer, events: Iterable[UserEvent], topic: str = USER_EVENTS, flush_timeout_s: float = 30.0
) -> Delivery:
    """Produce a fixed list of contract events (key = user_id) and wait for their delivery reports."""
    delivery = Delivery()
    for event in events:
        _send(producer, topic, event.key(), event.to_json(), None, delivery)
        producer.poll(0)
    producer.flush(flush_timeout_s)
    return delivery
