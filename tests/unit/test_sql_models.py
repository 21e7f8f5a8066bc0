"""The SQL model loader: lineage from refs and sources, and load errors that name the file."""

from pathlib import Path

import dagster as dg
import pytest

from dbt_like_sql.loader import MODELS_DIR, ModelError, build_sql_assets, load_models

pytestmark = pytest.mark.unit


def _models(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.sql").write_text(text)
    return tmp_path


def test_the_projects_models_load_in_dependency_order_with_their_lineage():
    models = load_models(MODELS_DIR)
    names = [m.name for m in models]
    assert {"daily_activity", "conversion_funnel", "session_stats", "daily_kpis"} <= set(names)
    assert names.index("daily_kpis") > max(names.index(r) for r in ("daily_activity", "conversion_funnel", "session_stats"))
    kpis = next(m for m in models if m.name == "daily_kpis")
    assert kpis.publish and kpis.publish.table == "daily_kpis" and kpis.partitioned
    assets = {a.key: a for a in build_sql_assets(MODELS_DIR)}
    deps = {key.path[-1] for key in assets[dg.AssetKey("daily_kpis")].asset_deps[dg.AssetKey("daily_kpis")]}
    assert deps == {"daily_activity", "conversion_funnel", "session_stats"}
    activity_deps = assets[dg.AssetKey("daily_activity")].asset_deps[dg.AssetKey("daily_activity")]
    assert dg.AssetKey("silver_user_events") in activity_deps


def test_a_reference_to_a_missing_model_names_the_file_and_line(tmp_path):
    folder = _models(tmp_path, good="SELECT 1 AS x", broken="-- uses a model that is not there\nSELECT *\nFROM {{ ref('nowhere') }}")
    with pytest.raises(ModelError, match=r"broken\.sql:3: ref\('nowhere'\) names no model"):
        load_models(folder)


def test_an_undeclared_source_names_the_file(tmp_path):
    folder = _models(tmp_path, m="SELECT * FROM {{ source('gold', 'nothing') }}")
    with pytest.raises(ModelError, match=r"m\.sql:1: source\('gold', 'nothing'\) is not declared"):
        load_models(folder)


def test_a_cycle_names_the_files_in_it(tmp_path):
    folder = _models(tmp_path, a="SELECT * FROM {{ ref('b') }}", b="SELECT * FROM {{ ref('a') }}")
    with pytest.raises(ModelError, match=r"(a|b)\.sql -> .*cycle"):
        load_models(folder)


def test_a_template_that_does_not_render_names_the_file(tmp_path):
    folder = _models(tmp_path, m="SELECT {{ undefined_variable }}")
    with pytest.raises(ModelError, match=r"m\.sql.*does not render"):
        load_models(folder)
