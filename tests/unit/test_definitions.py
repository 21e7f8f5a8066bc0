"""The code location loads: one Definitions with every resource bound."""

import dagster as dg
import pytest

pytestmark = pytest.mark.unit


def test_definitions_load_and_validate():
    from analytics_defs.definitions import defs

    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {"kafka", "spark", "postgres", "mlflow", "warehouse"} <= set(repo.get_top_level_resources())


def test_postgres_url_from_environment_is_an_env_var_not_a_literal():
    from analytics_defs.resources import build_resources
    from settings import Settings

    resources = build_resources(Settings.from_env({"POSTGRES_URL": "postgresql://app:s3cret@db:5432/analytics"}))
    assert isinstance(resources["postgres"].url, dg.EnvVar)
    assert "s3cret" not in repr(resources["postgres"])
