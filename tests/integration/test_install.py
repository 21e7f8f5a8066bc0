"""A non-editable `pip install .` into a fresh virtualenv runs on its own: the console script, the SQL
migrations (package data) against a real PostgreSQL, the jar manifest, and the Flink job staged from the
installed package and run by the Flink virtualenv."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from settings import PROJECT_ROOT, with_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding a non-editable install of the project (built the way `pip install .`
    builds it). Its dependencies are this
    environment's (a path line, so the checkout's editable-install finder is not loaded there)."""
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz-lakehouse-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=600, cwd=root,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return venv


def _run(venv: Path, *argv: str, env: dict | None = None, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)


def test_console_script_runs_from_the_installed_package(installed, tmp_path):
    result = _run(installed, str(installed / "bin" / "lakehouse"), "--help", cwd=tmp_path)
    assert result.returncode == 0 and "bootstrap" in result.stdout, result.stderr
    where = _run(installed, str(installed / "bin" / "python"), "-c",
                 "import jvm, stack, settings; print(jvm.POM, jvm.POM.exists(), settings.SOURCE_CHECKOUT)",
                 cwd=tmp_path)
    pom, exists, checkout = where.stdout.split()
    assert "site-packages" in pom and exists == "True" and checkout == "False", where.stderr


def test_bootstrap_applies_the_packaged_migrations(installed, tmp_path, postgres_url, kafka_bootstrap):
    database = "install_it"
    with psycopg.connect(with_database(postgres_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    env = {
        "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "POSTGRES_URL": with_database(postgres_url, database),
        "DAGSTER_POSTGRES_DB": "install_it_dagster",
        "MLFLOW_POSTGRES_DB": "install_it_mlflow",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    result = _run(installed, str(installed / "bin" / "lakehouse"), "bootstrap", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(with_database(postgres_url, database)) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    shipped = sorted(p.stem for p in (PROJECT_ROOT / "stack" / "migrations").glob("*.sql"))
    assert versions == shipped


def test_flink_job_is_staged_from_the_installed_package_and_runs(installed, tmp_path, stack_cfg):
    stage = _run(installed, str(installed / "bin" / "python"), "-c",
                 f"from stack.services.flink_cep import stage_job; print(stage_job(__import__('pathlib').Path({str(tmp_path / 'job')!r})))",
                 cwd=tmp_path)
    assert stage.returncode == 0, stage.stderr
    job_dir = Path(stage.stdout.strip())
    assert (job_dir / "flink_cep" / "job.py").exists() and (job_dir / "contract" / "detection.py").exists()
    flink_python = stack_cfg.flink_venv_dir / "bin" / "python"
    printed = _run(installed, str(flink_python), "-m", "flink_cep.job", "--print-sql",
                   env={"PYTHONPATH": str(job_dir)}, cwd=tmp_path)
    assert printed.returncode == 0 and "MATCH_RECOGNIZE" in printed.stdout, printed.stderr[-2000:]
