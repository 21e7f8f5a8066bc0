"""The models through Dagster on real services: features from eight simulated days landed through Kafka,
Spark and Delta; both models trained, logged and registered in a real MLflow (PostgreSQL store) and
promoted past their blocking check; a deliberately worse candidate kept away from @champion, also when
the champion asset is materialised on its own; the day scored into PostgreSQL, ML alerts within the
day's budget on the topic and stored by the real alert loader, insights on their topic; a re-run that
changes nothing; a training on too few users that fails saying why; and the training sensor asking for
the last closed days, whose runs train on the defaults."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from analytics_defs.constants import USER_FEATURES_TABLE
from assets.delta import read_day
from assets.features import user_features
from assets.models import anomaly_champion, anomaly_model, segmentation_champion, segmentation_model
from assets.scoring import behavior_anomaly_scores, user_segments
from contract.topics import ANALYTICS_INSIGHTS, SECURITY_ALERTS
from ml import tracking
from resources.mlflow import MLflowResource
from resources.truth import GroundTruthResource
from simulator import SimulatorConfig, make_producer, run
from stack.services import AlertLoader
from tests.lakehouse_flow import Lakehouse, wait_until_closed

pytestmark = pytest.mark.integration

TRAINING = [segmentation_model, segmentation_champion, anomaly_model, anomaly_champion]
SERVING = [user_segments, behavior_anomaly_scores]


@pytest.fixture(scope="module")
def ml(kafka_bootstrap, spark_remote, postgres_url, mlflow_uri, stack_root, stack_cfg, services):
    """Eight simulated days of 700 users (drifting users among them) landed, refined and featurized: a
    whole 7-day window of data behind yesterday's features, so a model trained on them is trusted."""
    services.start(AlertLoader(stack_cfg))  # stores the ML alerts from the topic, like the CEP ones
    truth_dir = stack_root / "ml-truth"
    now_ms = int(time.time() * 1000)
    start_ms = (now_ms // 86_400_000 - 8) * 86_400_000  # the first event day (conftest: 8 days back)
    run(SimulatorConfig(seed=21, clock="simulated", users=700, rate=0.5, start_ms=start_ms,
                        duration_s=(now_ms - 60_000 - start_ms) / 1000, scenario_rate=0.05, drift_users=15,
                        out_dir=truth_dir / "run-1"),
        make_producer(kafka_bootstrap))
    wait_until_closed()
    lakehouse = Lakehouse(kafka_bootstrap, spark_remote, postgres_url, stack_root / "warehouse-ml",
                          mlflow=MLflowResource(tracking_uri=mlflow_uri),
                          truth=GroundTruthResource(directory=str(truth_dir)))
    lakehouse.land_new_windows(start_ms)
    days = lakehouse.refresh_requests()
    for day in days:
        lakehouse.build_day(day)
    day = datetime.fromtimestamp((now_ms - 86_400_000) / 1000, UTC).date().isoformat()  # yesterday: whole
    return {"lakehouse": lakehouse, "day": day, "uri": mlflow_uri}


def _train(ml, **config) -> object:
    run_config = {"ops": {name: {"config": {"feature_date": ml["day"], **config}}
                          for name in ("segmentation_model", "anomaly_model")}}
    return ml["lakehouse"].materialize(TRAINING, run_config=run_config, raise_on_error=False)


@pytest.fixture(scope="module")
def trained(ml):
    result = _train(ml)
    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    return result


def test_both_models_are_registered_promoted_and_loadable_as_champion(ml, trained):
    uri = ml["uri"]
    for name, asset in (("user_segments_kmeans", "segmentation_model"), ("user_anomaly_iforest", "anomaly_model")):
        meta = trained.asset_materializations_for_node(asset)[0].metadata
        assert meta["model_name"].value == name and meta["feature_date"].value == ml["day"]
        assert tracking.champion_version(uri, name) == str(meta["model_version"].value)
        run = tracking.client(uri).get_run(meta["mlflow_run_id"].value)
        assert run.data.tags["dagster.run_id"] == trained.run_id
        assert run.data.tags["dagster.partition_key"] == ml["day"]
    checks = trained.get_asset_check_evaluations()
    assert len(checks) == 2 and all(c.passed for c in checks)
    model = tracking.load_segmentation(uri)
    assert model is not None and len(set(model.names.values())) == len(model.names)
    assert tracking.load_anomaly(uri) is not None


def test_a_worse_candidate_does_not_take_the_champion_alias(ml, trained):
    uri = ml["uri"]
    before = tracking.champion_version(uri, "user_anomaly_iforest")
    worse = ml["lakehouse"].materialize([anomaly_model, anomaly_champion], raise_on_error=False, run_config={
        "ops": {"anomaly_model": {"config": {"feature_date": ml["day"], "trees": 1, "max_samples": 4}}}})
    check = next(c for c in worse.get_asset_check_evaluations() if c.check_name == "no_worse_than_champion")
    assert not check.passed and not worse.success
    meta = check.metadata
    assert meta["candidate_value"].value < meta["champion_value"].value  # both figures are shown
    assert worse.asset_materializations_for_node("anomaly_champion") == []
    assert tracking.champion_version(uri, "user_anomaly_iforest") == before
    # the champion asset on its own (one click in the UI) reads the decision recorded on the candidate
    alone = ml["lakehouse"].materialize([anomaly_champion], raise_on_error=False)
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert not alone.success and "not promoted" in str(failure.step_failure_data.error)
    assert f"stays at version {before}" in str(failure.step_failure_data.error)
    assert tracking.champion_version(uri, "user_anomaly_iforest") == before


def _topic(bootstrap: str, topic: str) -> list[dict]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{topic}-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found, idle = [], 0
    while idle < 10:
        batch = consumer.consume(500, 1.0)
        idle = 0 if batch else idle + 1
        found += [json.loads(m.value()) for m in batch if m.error() is None]
    consumer.close()
    return found


@pytest.fixture(scope="module")
def scored(ml, trained):
    first = ml["lakehouse"].materialize(SERVING, partition_key=ml["day"])
    return first


def test_scores_segments_alerts_and_insights_are_published(ml, scored, postgres_url, kafka_bootstrap):
    day = ml["day"]
    features = read_day(ml["lakehouse"].path(USER_FEATURES_TABLE), "feature_date", __import__("datetime").date.fromisoformat(day))
    with psycopg.connect(postgres_url) as conn:
        segments = conn.execute("SELECT count(*), count(DISTINCT segment_name) FROM user_segments "
                                "WHERE scored_date = %s", (day,)).fetchone()
        scores = conn.execute("SELECT count(*), count(*) FILTER (WHERE is_anomaly) FROM user_anomaly_scores "
                              "WHERE scored_date = %s", (day,)).fetchone()
        # what PostgreSQL holds of the budget: who was alerted, and the scores on both sides of the cut
        alerted, lowest_alerted, highest_passed_over = conn.execute(
            "SELECT count(*) FILTER (WHERE alerted), min(score) FILTER (WHERE alerted), "
            "max(score) FILTER (WHERE is_anomaly AND NOT alerted) FROM user_anomaly_scores WHERE scored_date = %s",
            (day,)).fetchone()
    assert 0 < segments[0] <= len(features) and segments[1] >= 2
    assert scores[0] == segments[0] and scores[1] >= 1
    assert 1 <= alerted <= min(scores[1], int(0.01 * scores[0]))  # the budget: 1% of the eligible users
    assert highest_passed_over is None or lowest_alerted >= highest_passed_over  # highest scores first
    meta = scored.asset_materializations_for_node("behavior_anomaly_scores")[0].metadata
    assert meta["trusted"].value is True and meta["alerts_sent"].value == alerted
    assert meta["capped"].value == scores[1] - alerted
    on_topic = [a for a in _topic(kafka_bootstrap, SECURITY_ALERTS) if a.get("source") == "ml_anomaly"]
    assert len({a["alert_id"] for a in on_topic}) == alerted
    deadline = time.time() + 60
    while time.time() < deadline:
        with psycopg.connect(postgres_url) as conn:
            stored = conn.execute("SELECT count(*) FROM security_alerts WHERE source = 'ml_anomaly' "
                                  "AND rule = 'behavior_anomaly'").fetchone()[0]
        if stored >= alerted:
            break
        time.sleep(1)
    assert stored == alerted  # the loader stored every ML alert, once
    insights = _topic(kafka_bootstrap, ANALYTICS_INSIGHTS)
    assert any(i.get("type") == "segment_summary" for i in insights), insights[:3]


def test_scoring_the_day_again_changes_nothing(ml, scored, postgres_url):
    def snapshot():
        with psycopg.connect(postgres_url) as conn:
            return (
                conn.execute("SELECT user_id, segment_id, segment_name, model_version FROM user_segments "
                             "WHERE scored_date = %s ORDER BY user_id", (ml["day"],)).fetchall(),
                conn.execute("SELECT user_id, score, is_anomaly FROM user_anomaly_scores WHERE scored_date = %s "
                             "ORDER BY user_id", (ml["day"],)).fetchall(),
                conn.execute("SELECT alert_id FROM security_alerts WHERE source = 'ml_anomaly' ORDER BY 1").fetchall(),
            )

    before = snapshot()
    ml["lakehouse"].materialize(SERVING, partition_key=ml["day"])
    time.sleep(3)  # anything re-sent to the topic has reached the loader
    assert snapshot() == before


def test_an_open_day_scored_again_and_again_stays_within_its_budget(ml, trained, postgres_url):
    """Today is open: its features move as events arrive and the day is re-scored at every refresh. Over
    every scoring, at most alert_share of its eligible users are alerted, and each scoring says so."""
    today = datetime.now(UTC).date()
    for _ in range(2):
        ml["lakehouse"].build_day(today.isoformat(), assets=[user_features])
        ml["lakehouse"].materialize([behavior_anomaly_scores], partition_key=today.isoformat())
    with psycopg.connect(postgres_url) as conn:
        runs = conn.execute("SELECT eligible_users, alerted_users, budget, trusted, as_of FROM ml_scoring_runs "
                            "WHERE scored_date = %s ORDER BY scored_at", (today,)).fetchall()
        alerted = conn.execute("SELECT count(*) FROM user_anomaly_scores WHERE scored_date = %s AND alerted",
                               (today,)).fetchone()[0]
    assert len(runs) == 2 and all(trusted for *_, trusted, _ in runs)
    assert all(a <= b == int(0.01 * e) for e, a, b, _, _ in runs) and alerted == runs[-1][1]
    assert runs[0][4] is not None and runs[0][4].date() == today  # the features as of now, not of midnight


def test_training_on_too_few_users_fails_saying_why(ml):
    result = ml["lakehouse"].materialize([segmentation_model], raise_on_error=False, run_config={
        "ops": {"segmentation_model": {"config": {"feature_date": ml["day"], "min_users": 100_000}}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "eligible" in message and "100000" in message.replace(",", ""), message


def test_the_training_sensor_asks_for_the_last_closed_days_and_they_train_on_the_defaults(ml):
    """What a new deployment with history sees in its first hour: the sensor requests the older of the two
    last closed days, its run trains both models with no hand-written config, then the next day."""
    import dagster as dg

    from analytics_defs.ml import ml_training_job
    from sensors.model_training import model_training_sensor

    lakehouse = ml["lakehouse"]
    days = [(datetime.now(UTC).date() - timedelta(days=k)).isoformat() for k in (2, 1)]
    job = dg.Definitions(assets=TRAINING, jobs=[ml_training_job], resources=lakehouse.resources).get_job_def(
        "ml_training_job")
    for day in days:
        with dg.build_sensor_context(instance=lakehouse.instance) as context:
            result = model_training_sensor(context)
        request, = result.run_requests
        assert request.run_key == f"train-{day}" and request.tags["lakehouse/feature_date"] == day
        ops = request.run_config["ops"]
        assert ops["segmentation_model"] == ops["anomaly_model"] == {"config": {"feature_date": day}}
        run = job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=lakehouse.instance,
                                     raise_on_error=False)
        for asset in ("segmentation_model", "anomaly_model"):
            meta = run.asset_materializations_for_node(asset)[0].metadata
            assert meta["feature_date"].value == day and meta["history_days"].value > 6.99
    with dg.build_sensor_context(instance=lakehouse.instance) as context:
        done = model_training_sensor(context)
    assert not done.run_requests and "every recent closed day" in done.skip_reason.skip_message
