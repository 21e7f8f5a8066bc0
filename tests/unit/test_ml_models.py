"""ml/: the feature matrix and eligibility, KMeans segments and their names, IsolationForest scores, the
threshold rule and evidence, on synthetic features with known structure (bench/ml_data.py)."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from bench.ml_data import synthetic_features
from contract.alerts import Severity
from ml.anomaly import (
    ALERT_RULE,
    DeviationSummary,
    PeerResiduals,
    anomaly_metrics,
    choose_threshold,
    paper_score,
    severity,
    train_anomaly,
)
from ml.evaluation import evaluate_models
from ml.features import FEATURES_BY_NAME, model_features
from ml.matrix import (
    EligibilityRule,
    NotEnoughUsers,
    eligible,
    eligible_mask,
    feature_matrix,
    feature_names,
    holdout_mask,
    registry_transform,
)
from ml.naming import ARCHETYPES, segment_names
from ml.segmentation import silhouette, train_segmentation, transformed
from simulator.truth import RULE_BEHAVIOR_ANOMALY

pytestmark = pytest.mark.unit

PERSONA_SEGMENT = {
    "bot_like_scraper": "bot-like scrapers",
    "night_owl": "night-time browsers",
    "power_shopper": "big spenders",
    "dormant": "occasional visitors",
    "casual_browser": "daytime browsers",
}


@pytest.fixture(scope="module")
def run():
    return synthetic_features(2000, seed=7, drift_share=0.0, scenario_users=1000)


@pytest.fixture(scope="module")
def segments(run):
    return train_segmentation(run.features, personas=run.personas)


# -- matrix and eligibility -------------------------------------------------------------------------------


def test_the_matrix_has_the_model_features_in_registry_order_and_says_what_is_missing(run):
    matrix = feature_matrix(run.features)
    assert list(matrix.columns) == [f.name for f in model_features()] == feature_names()
    assert (matrix.dtypes == "float64").all() and len(matrix) == len(run.features)
    with pytest.raises(KeyError, match="local_night_share_7d"):
        feature_matrix(run.features.drop(columns=["local_night_share_7d"]))


def test_the_registry_transform_applies_log1p_to_the_declared_features_only(run):
    matrix = feature_matrix(run.features.head(50))
    out = pd.DataFrame(registry_transform().fit_transform(matrix), columns=feature_names())
    for name in feature_names():
        expected = np.log1p(matrix[name]) if FEATURES_BY_NAME[name].transform == "log1p" else matrix[name]
        np.testing.assert_allclose(out[name], expected, err_msg=name)


def test_eligibility_leaves_out_scenario_identities_and_applies_each_minimum(run):
    kept = eligible(run.features)
    assert not kept["user_id"].str.startswith("s-").any()
    assert kept["user_id"].isin(run.personas.index).all() and len(kept) > 0.85 * 2000 * (1 - 0.17)
    row = run.features.iloc[[0]].assign(events_7d=10, sessions_7d=2, active_days_7d=2)
    rule = EligibilityRule(min_events_7d=10, min_sessions_7d=2, min_active_days_7d=2)
    assert eligible_mask(row, rule).item()
    for column in ("events_7d", "sessions_7d", "active_days_7d"):
        assert not eligible_mask(row.assign(**{column: row[column] - 1}), rule).item(), column


def test_the_holdout_is_a_stable_hash_split_of_about_the_asked_share(run):
    ids = run.features["user_id"]
    mask = holdout_mask(ids, 0.2)
    assert 0.17 < mask.mean() < 0.23
    shuffled = ids.sample(frac=1, random_state=1)
    assert (pd.Series(holdout_mask(shuffled, 0.2), index=shuffled.index).sort_index() == mask).all()
    assert not (holdout_mask(ids, 0.2, salt="other") == mask).all()


def test_training_on_too_few_eligible_users_fails_with_a_clear_message(run):
    few = pd.concat([run.features[run.features["user_id"].str.startswith("s-")], run.features.head(30)])
    with pytest.raises(NotEnoughUsers, match=r"user_segments_kmeans: only \d+ of 1030 users are eligible.*"
                                             r"No model was trained or registered"):
        train_segmentation(few)
    with pytest.raises(NotEnoughUsers, match="user_anomaly_iforest"):
        train_anomaly(few)


# -- segmentation -------------------------------------------------------------------------------------------


def test_planted_personas_are_recovered_as_named_segments(run, segments):
    users = eligible(run.features)
    labels, distances = segments.assign(feature_matrix(users))
    personas = run.personas.reindex(users["user_id"]).to_numpy()
    assert adjusted_rand_score(personas, labels) > 0.9
    named = pd.Series([segments.names[s] for s in labels])
    for persona, name in PERSONA_SEGMENT.items():
        assert named[personas == persona].value_counts().idxmax() == name, persona
    assert (distances >= 0).all()
    assert segments.metrics["holdout.ari_personas"] > 0.9
    assert 0 < segments.metrics["train.silhouette"] <= 1 and segments.metrics["train.davies_bouldin"] > 0
    shares = [v for k, v in segments.metrics.items() if k.startswith("train.segment_share.")]
    assert len(shares) == 5 and math.isclose(sum(shares), 1.0)


def test_names_are_deterministic_and_depend_on_the_profile_not_the_segment_id(run, segments):
    again = train_segmentation(run.features)
    assert again.names == segments.names
    profiles = segments.profiles()
    order = [3, 1, 4, 0, 2]
    permuted = profiles.iloc[order].reset_index(drop=True)
    renamed = segment_names(permuted)
    assert [renamed[i] for i in range(5)] == [segments.names[j] for j in order]


def test_a_segment_no_archetype_fits_is_named_by_its_strongest_feature_and_names_stay_distinct():
    columns = feature_names()
    flat = pd.DataFrame(0.0, index=range(3), columns=columns)
    flat.loc[0, "password_resets_7d"] = 3.0
    flat.loc[1, "password_resets_7d"] = 2.5
    flat.loc[2, "searches_7d"] = -2.0
    assert segment_names(flat) == {0: "high password resets", 1: "high password resets (2)", 2: "low searches"}
    bots = flat.copy()
    bots.loc[0, ["events_per_session_7d", "peak_events_per_minute_7d"]] = 3.0
    bots.loc[0, "median_gap_s_7d"] = -3.0
    bots.loc[1, ["events_per_session_7d", "peak_events_per_minute_7d"]] = 2.0
    bots.loc[1, "median_gap_s_7d"] = -2.0
    names = segment_names(bots)
    assert names[0] == "bot-like scrapers" and names[1] != names[0]
    assert {a.name for a in ARCHETYPES} >= {"bot-like scrapers", "big spenders", "night-time browsers"}


def test_silhouette_on_a_seeded_sample_is_close_to_the_exact_figure(run, segments):
    matrix = feature_matrix(eligible(run.features))
    space, (labels, _) = transformed(segments.pipeline, matrix), segments.assign(matrix)
    exact = silhouette(space, labels, sample=10_000)
    sampled = silhouette(space, labels, sample=600, seed=3)
    assert sampled == silhouette(space, labels, sample=600, seed=3)
    assert abs(exact - sampled) < 0.05
    assert math.isnan(silhouette(space, np.zeros(len(labels), int)))


# -- anomalies ----------------------------------------------------------------------------------------------


PLANTED = {  # each outlier far out in its own direction, on a few features that go together
    "x-traveller": {"distinct_countries_7d": 6, "distinct_ips_7d": 30, "distinct_devices_7d": 8},
    "x-takeover": {"password_resets_7d": 6, "failed_login_ratio_7d": 0.7, "share_login_failed_7d": 0.3},
    "x-scraper": {"events_per_session_7d": 400.0, "median_gap_s_7d": 0.2, "peak_events_per_minute_7d": 200},
    "x-spender": {"purchases_7d": 200, "purchase_amount_7d": 50_000.0, "share_purchase_7d": 0.5,
                  "cart_to_purchase_7d": 5.0},
    "x-insomniac": {"local_night_share_7d": 0.95, "local_hour_cos_7d": 0.95, "hour_spread_7d": 0.8},
}


def _with_planted_outliers(run):
    """Background users plus one casual browser per PLANTED entry, pushed far out on its features."""
    base = eligible(run.features)
    outliers = base[run.personas.reindex(base["user_id"]).to_numpy() == "casual_browser"].head(len(PLANTED)).copy()
    outliers["user_id"] = list(PLANTED)
    for i, changes in enumerate(PLANTED.values()):
        for name, value in changes.items():
            outliers.iloc[i, outliers.columns.get_loc(name)] = value
    return pd.concat([base, outliers], ignore_index=True), outliers


def test_planted_outliers_score_highest_and_the_score_is_the_papers(run):
    features, outliers = _with_planted_outliers(run)
    model = train_anomaly(features, holdout_share=0.05)
    users = eligible(features)
    scores = model.score(feature_matrix(users))
    np.testing.assert_allclose(scores, -model.pipeline.score_samples(feature_matrix(users)))
    assert ((scores > 0) & (scores <= 1)).all()
    top = set(users["user_id"].iloc[np.argsort(-scores)[: len(PLANTED)]])
    assert top == set(outliers["user_id"])
    evidence = dict(zip(outliers["user_id"], model.standout_features(feature_matrix(outliers)), strict=True))
    # the traveller stays among casual browsers, so what stands out is exactly what was planted; the others
    # may land in another peer group (the scraper among bots), where other features make them odd
    assert [e.feature for e in evidence["x-traveller"]] == list(PLANTED["x-traveller"])
    assert evidence["x-traveller"][0].value == 6 and evidence["x-traveller"][0].typical == pytest.approx(1, abs=0.1)
    assert all(len(ev) == 3 and abs(ev[0].z) >= 5 for ev in evidence.values())


def test_the_configured_threshold_is_kept_when_it_flags_some_users_within_budget():
    scores = np.r_[np.linspace(0.3, 0.7, 995), [0.81, 0.82, 0.85, 0.9, 0.95]]
    choice = choose_threshold(scores, configured=0.8, alert_share=0.01)
    assert choice.rule == "configured" and choice.chosen == 0.8
    assert choice.flagged_at_configured == choice.flagged_at_chosen == 5


def test_a_threshold_that_flags_nobody_is_lowered_to_the_alert_budget_and_says_so():
    scores = np.linspace(0.35, 0.75, 1000)
    choice = choose_threshold(scores, configured=0.8, alert_share=0.01)
    assert choice.rule == "validation_quantile" and choice.flagged_at_configured == 0
    assert choice.chosen == pytest.approx(np.quantile(scores, 0.99))
    assert choice.flagged_at_chosen == 10
    assert "flags nobody of 1000 validation users" in choice.reason and "0.750" in choice.reason


def test_a_threshold_that_flags_too_many_is_raised_and_the_floor_holds():
    scores = np.linspace(0.6, 0.99, 1000)
    raised = choose_threshold(scores, configured=0.8, alert_share=0.02)
    assert raised.chosen == pytest.approx(np.quantile(scores, 0.98)) and raised.flagged_at_chosen == 20
    assert "over budget" in raised.reason
    flat = choose_threshold(np.linspace(0.3, 0.45, 1000), configured=0.8, alert_share=0.01)
    assert flat.chosen == 0.5 and flat.flagged_at_chosen == 0 and "floor" in flat.reason


def test_severity_grows_with_the_score_past_the_threshold():
    t = 0.6
    assert severity(0.599, t) is None
    assert [severity(s, t) for s in (0.6, 0.65, 0.72, 0.85, 1.0)] == [
        Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL, Severity.CRITICAL]


def test_peer_residuals_are_z_scores_within_the_nearest_group_with_a_floor_on_the_spread():
    rng = np.random.default_rng(0)
    a = np.c_[rng.normal(0, 1, 200), np.zeros(200)]  # second feature constant within group a
    b = np.c_[rng.normal(50, 2, 200), rng.normal(10, 3, 200)]
    peers = PeerResiduals(n_segments=2, seed=0, min_scale=0.05, pooled_share=0.0).fit(np.r_[a, b])
    group_a, group_b = peers.peer_group([[0.0, 0.0]])[0], peers.peer_group([[50.0, 10.0]])[0]
    assert group_a != group_b and peers.scale_[group_a][1] == 0.05
    z = peers.transform([[2.0, 0.0], [50.0, 10.0 + 3 * peers.scale_[group_b][1]], [0.0, 1.0]])
    assert z[0][0] == pytest.approx((2.0 - peers.center_[group_a][0]) / peers.scale_[group_a][0])
    assert z[1][1] == pytest.approx(3.0, abs=0.2) and z[2][1] == pytest.approx(20.0)
    # by default a group's spread is at least half the feature's median spread over the groups
    pooled = PeerResiduals(n_segments=2, seed=0).fit(np.r_[a, b])
    assert pooled.scale_[group_a][1] == pytest.approx(0.5 * np.median([0.0, b[:, 1].std()]))


def test_deviations_are_shrunk_by_the_evidence_and_summarised_one_sided():
    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(0, 1, 400), np.log1p(rng.integers(5, 500, 400))]
    peers = PeerResiduals(n_segments=1, seed=0, evidence=(1, 0.0, 1.0), evidence_events=30).fit(X)
    few, many = np.array([[3.0, np.log1p(10)]]), np.array([[3.0, np.log1p(990)]])
    assert peers.weight(few)[0] == pytest.approx(np.sqrt(10 / 40)) and peers.weight(many)[0] == pytest.approx(np.sqrt(990 / 1020))
    assert abs(peers.transform(few)[0, 0]) < abs(peers.transform(many)[0, 0])
    summary = DeviationSummary(top=2).fit(np.zeros((10, 4)) + np.r_[0.5, 0.1, 0.1, 0.1])
    out = summary.transform(np.array([[0.0, 0.0, 0.0, 0.0], [0.0, -9.0, 4.0, 0.0]]))
    assert out[0] == pytest.approx(summary.median_)  # closer to the group than usual: the median
    assert out[1][:2] == pytest.approx([9.0, 4.0]) and out[1][2] == pytest.approx(np.sqrt((81 + 16) / 4))


def test_metrics_say_honestly_when_the_threshold_flags_nobody():
    scores = np.r_[np.full(98, 0.4), 0.7, 0.72]
    truth = np.r_[np.zeros(98, bool), True, True]
    choice = choose_threshold(scores, 0.8, 0.02)
    m = anomaly_metrics(scores, choice, truth)
    assert m["flagged_at_configured"] == 0 and math.isnan(m["precision_at_configured"])
    assert m["recall_at_configured"] == 0 and m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0
    assert m["precision_at_chosen"] == 1.0 and m["recall_at_chosen"] == 1.0


def test_training_logs_a_threshold_chosen_on_the_holdout_and_truth_figures(run):
    drifted = synthetic_features(3000, seed=11, drift_share=0.02)
    model = train_anomaly(drifted.features, drifting=drifted.drifting)
    assert model.threshold.validation_users == model.training.holdout == len(model.validation_scores)
    assert model.metrics["holdout.threshold_chosen"] == model.threshold.chosen
    assert model.metrics["train.roc_auc"] > 0.8 and model.metrics["holdout.drifting_users"] > 0
    np.testing.assert_allclose(np.sort(model.validation_scores), np.sort(paper_score(
        model.pipeline, feature_matrix(eligible(drifted.features)).iloc[
            np.flatnonzero(holdout_mask(eligible(drifted.features)["user_id"]))])))


def test_evaluation_returns_both_models_figures_against_truth():
    drifted = synthetic_features(3000, seed=5, drift_share=0.02, scenario_users=500)
    result = evaluate_models(drifted.features, drifted.personas, drifted.drifting)
    assert result.segmentation["ari_personas"] > 0.9 and result.anomaly["roc_auc"] > 0.8
    assert result.anomaly["drifting_total"] == len(drifted.drifting)
    assert set(result.personas_by_segment.index) == set(PERSONA_SEGMENT.values())
    text = "\n".join(result.lines())
    assert "ARI vs personas" in text and "ROC-AUC" in text and result.threshold_reason in text
    assert all(k.startswith("eval.") for k in result.metrics())


def test_the_alert_rule_is_the_one_the_simulator_truth_expects():
    assert ALERT_RULE == RULE_BEHAVIOR_ANOMALY


def test_a_changed_eligibility_rule_changes_who_is_modelled(run):
    strict = replace(EligibilityRule(), min_events_7d=1000)
    assert len(eligible(run.features, strict)) < len(eligible(run.features)) / 3
