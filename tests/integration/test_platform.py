"""Each resource against its real service: Kafka, PostgreSQL, Spark Connect + Delta, MLflow, Dagster."""


import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from contract.topics import USER_EVENTS, topic_specs
from resources.kafka import KafkaResource, ensure_topics
from resources.mlflow import TAG_DAGSTER_ASSET, TAG_DAGSTER_RUN_ID, MLflowResource
from resources.postgres import PostgresResource
from resources.spark import SparkResource
from settings import PROJECT_ROOT
from stack.migrate import migrate
from stack.services.dagster import write_dagster_yaml

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------ Kafka
def test_topics_exist_with_log_append_time_and_creation_is_idempotent(kafka_bootstrap):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    for spec in topic_specs(2):
        assert spec.name in topics
        assert len(topics[spec.name].partitions) == spec.partitions
    config = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, USER_EVENTS)])
    entries = next(iter(config.values())).result()
    assert entries["message.timestamp.type"].value == "LogAppendTime"
    assert ensure_topics(admin, topic_specs(2)) == []  # second run creates nothing


def test_kafka_resource_produces_and_answers_offset_queries(kafka_bootstrap):
    kafka = KafkaResource(bootstrap_servers=kafka_bootstrap)
    admin = kafka.admin()
    from contract.topics import TopicSpec

    topic = f"it-offsets-{time.time_ns()}"
    ensure_topics(admin, [TopicSpec(topic, 2, {"message.timestamp.type": "LogAppendTime"})])
    before_ms = int(time.time() * 1000) - 1
    producer = kafka.producer()
    for i in range(100):
        producer.produce(topic, key=f"user-{i % 7}".encode(), value=json.dumps({"i": i}).encode())
    assert producer.flush(30) == 0
    marks = kafka.watermarks(topic)
    assert sorted(marks) == [0, 1]
    assert sum(high - low for low, high in marks.values()) == 100
    start = kafka.offsets_for_times(topic, before_ms)
    assert all(offset == 0 for p, offset in start.items() if marks[p][1] > 0)
    future = kafka.offsets_for_times(topic, int(time.time() * 1000) + 60_000)
    assert set(future.values()) == {-1}  # nothing at or after a future timestamp yet


# ------------------------------------------------------------------------------- PostgreSQL
def test_migrations_are_versioned_and_idempotent(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert versions and versions[0].startswith("0001")
    assert {"security_alerts", "user_segments", "ml_model_metrics", "streaming_performance"} <= tables
    assert migrate(postgres_url) == []


def test_bulk_upsert_inserts_updates_and_never_duplicates(postgres_url):
    # a day no other test scores: the table is shared by the session
    pg = PostgresResource(url=postgres_url)
    day = date(2031, 6, 1)
    columns = ["user_id", "scored_date", "segment_id", "segment_name", "model_name", "model_version"]
    rows = [(f"u{i}", day, i % 3, f"seg{i % 3}", "kmeans", "1") for i in range(1000)]
    assert pg.bulk_upsert("user_segments", columns, rows, ["user_id", "scored_date"]) == 1000
    assert pg.bulk_upsert("user_segments", columns, rows, ["user_id", "scored_date"]) == 0  # a re-run writes nothing
    # same keys again, segment changed, plus a key repeated inside the batch: last one wins
    rows2 = [(f"u{i}", day, 7, "seg7", "kmeans", "2") for i in range(1000)]
    rows2.append(("u1", day, 9, "seg9", "kmeans", "3"))
    assert pg.bulk_upsert("user_segments", columns, rows2, ["user_id", "scored_date"]) == 1000
    with pg.connection() as conn:
        count, distinct_segments = conn.execute(
            "SELECT count(*), count(DISTINCT segment_id) FROM user_segments WHERE scored_date = %s", (day,)
        ).fetchone()
        u1 = conn.execute("SELECT segment_id, model_version FROM user_segments WHERE user_id = 'u1'").fetchone()
    assert count == 1000
    assert distinct_segments == 2 and u1 == (9, "3")
    # DO NOTHING mode keeps existing rows untouched
    assert pg.bulk_upsert("user_segments", columns, [("u1", day, 0, "x", "kmeans", "4")],
                          ["user_id", "scored_date"], ()) == 0
    with pg.connection() as conn:
        assert conn.execute("SELECT segment_id FROM user_segments WHERE user_id = 'u1'").fetchone() == (9,)
    # a value without its column's Python type fails naming the table and the column, and writes nothing
    with pytest.raises(TypeError, match=r"user_segments\.scored_date"):
        pg.bulk_upsert("user_segments", columns, [("u2", "2031-06-01", 0, "x", "kmeans", "5")],
                       ["user_id", "scored_date"])
    with pg.connection() as conn:
        assert conn.execute("SELECT model_version FROM user_segments WHERE user_id = 'u2'").fetchone() == ("2",)


# ---------------------------------------------------------------------------- Spark + Delta
def test_spark_connect_writes_delta_with_log_and_time_travel(spark, stack_root):
    path = str(stack_root / "warehouse" / f"it_delta_{time.time_ns()}")
    started = time.monotonic()
    spark.range(0, 1000).selectExpr("id", "id % 10 AS bucket").write.format("delta").save(path)
    spark.range(0, 500).selectExpr("id + 1000 AS id", "id % 10 AS bucket").write.format("delta").mode("append").save(path)
    assert Path(path, "_delta_log", "00000000000000000000.json").exists()
    assert spark.read.format("delta").load(path).count() == 1500
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 1000
    assert time.monotonic() - started < 120


def test_spark_resource_attaches_to_connect_quickly(spark_remote):
    started = time.monotonic()
    session = SparkResource(remote=spark_remote).get_session()
    assert session.sql("SELECT 1 AS one").collect()[0].one == 1
    assert time.monotonic() - started < 30  # attach, not a JVM start


def test_classic_session_with_spark_master_writes_delta(stack_cfg, stack_root):
    """SPARK_MASTER builds a classic session with the same jars: Delta works that way too.
    Run in a child process: a classic session and a Connect session cannot share one Python process."""
    path = stack_root / "warehouse" / f"it_classic_{time.time_ns()}"
    script = (
        "from resources.spark import SparkResource\n"
        f"s = SparkResource(master='local[1]', jvm_lib_dir={str(stack_cfg.jvm_lib_dir)!r}, driver_memory='1g').get_session()\n"
        f"s.range(0, 42).write.format('delta').save({str(path)!r})\n"
        f"print('ROWS', s.read.format('delta').option('versionAsOf', 0).load({str(path)!r}).count())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert "ROWS 42" in out.stdout, out.stderr[-3000:]
    assert (path / "_delta_log").is_dir()


# ----------------------------------------------------------------------------------- MLflow
def test_mlflow_run_is_logged_with_dagster_lineage_and_read_back(mlflow_uri):
    resource = MLflowResource(tracking_uri=mlflow_uri, experiment_name="it-platform")

    @dg.asset
    def tracked_model(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
        import mlflow as mlf

        with mlflow.start_run(context, run_name="it") as run:
            mlf.log_param("k", 5)
            mlf.log_metric("silhouette", 0.42)
            mlf.log_text("hello", "notes.txt")
        return dg.MaterializeResult(metadata={"mlflow_run_id": run.info.run_id})

    result = dg.materialize([tracked_model], resources={"mlflow": resource})
    assert result.success
    run_id = result.asset_materializations_for_node("tracked_model")[0].metadata["mlflow_run_id"].value
    run = resource.client().get_run(run_id)
    assert run.data.params["k"] == "5"
    assert run.data.metrics["silhouette"] == pytest.approx(0.42)
    assert run.data.tags[TAG_DAGSTER_RUN_ID] == result.run_id
    assert run.data.tags[TAG_DAGSTER_ASSET] == "tracked_model"
    assert [a.path for a in resource.client().list_artifacts(run_id)] == ["notes.txt"]


# ---------------------------------------------------------------------------------- Dagster
def test_asset_materialises_with_postgres_instance_storage(stack_cfg, postgres_url, spark, stack_root, monkeypatch):
    home = stack_root / "dagster-it"
    write_dagster_yaml(home)
    monkeypatch.setenv("DAGSTER_PG_URL", stack_cfg.dagster_postgres_url)
    path = str(stack_root / "warehouse" / "it_dagster_asset")

    @dg.asset
    def numbers(spark: SparkResource) -> dg.MaterializeResult:
        df = spark.get_session().range(0, 10)
        df.write.format("delta").mode("overwrite").save(path)
        return dg.MaterializeResult(metadata={"rows": df.count()})

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([numbers], instance=instance, resources={"spark": SparkResource(remote=stack_cfg.spark_remote)})
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert event is not None and event.run_id == result.run_id
    with psycopg.connect(stack_cfg.dagster_postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone() == (1,)
