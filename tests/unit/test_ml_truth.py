"""ml/truth.py: personas and drifting users read from one or several simulator run directories."""

import pytest

from ml.truth import read_drifting_users, read_personas, run_directories
from simulator.truth import RULE_BEHAVIOR_ANOMALY, GroundTruth, Label, write_ground_truth

pytestmark = pytest.mark.unit


def _user(user_id, persona, scenario_id=None):
    return {"user_id": user_id, "persona": persona, "home_city": "Lyon", "home_country": "FR", "home_lat": 45.7,
            "home_lon": 4.8, "utc_offset_h": 1, "devices": [], "drift": None, "scenario_id": scenario_id}


def _write(path, users, labels):
    return write_ground_truth(path, GroundTruth(users, labels, [], {"run_id": path.name}))


def _drift(i, user, complete=True):
    return Label(f"drift-{i}", "drift", user, None, RULE_BEHAVIOR_ANOMALY, True, complete=complete,
                 details={"drift": "scraper"})


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "simulator"
    _write(root / "run-1", [_user("u-1", "night_owl"), _user("u-2", "dormant"), _user("s-1", "scenario_user", "bf-1")],
           [_drift(0, "u-1"), Label("bf-1", "brute_force", "s-1", "203.0.113.7", "brute_force", True, complete=True)])
    # the persistent population is written again by the next run; a new drift starts and is incomplete
    _write(root / "run-2", [_user("u-1", "night_owl"), _user("u-2", "power_shopper"), _user("u-3", "casual_browser")],
           [_drift(1, "u-3", complete=False)])
    (root / "population").mkdir()  # not a run directory
    return root


def test_personas_of_every_run_without_scenario_identities(runs):
    personas = read_personas(runs)
    assert personas.to_dict() == {"u-1": "night_owl", "u-2": "power_shopper", "u-3": "casual_browser"}
    assert read_personas(runs, include_scenario_users=True)["s-1"] == "scenario_user"
    assert read_personas(runs / "run-1")["u-2"] == "dormant"


def test_drifting_users_from_drift_labels_only(runs):
    assert read_drifting_users(runs) == {"u-1", "u-3"}
    assert read_drifting_users(runs, complete_only=True) == {"u-1"}
    assert read_drifting_users([runs / "run-2"]) == {"u-3"}


def test_run_directories_accept_a_folder_runs_or_a_mix_and_say_when_there_is_none(runs, tmp_path):
    assert run_directories(runs) == [runs / "run-1", runs / "run-2"]
    assert run_directories([runs / "run-2", str(runs / "run-1")]) == [runs / "run-2", runs / "run-1"]
    with pytest.raises(FileNotFoundError, match="no simulator truth"):
        run_directories(tmp_path / "empty")
