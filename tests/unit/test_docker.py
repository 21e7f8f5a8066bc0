"""The container files cannot be built here (no Docker engine); check what can be checked: the compose
file parses and publishes on loopback only, every command is a real entry point, every COPY source
exists, and every entry point imports from exactly the files the Dockerfile copies."""

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from settings import PROJECT_ROOT, Settings
from stack.services import all_services

pytestmark = pytest.mark.unit

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
# what each image runs: the console script, the code location and the `python -m` services
MAIN_ENTRY_POINTS = ("stack.cli", "analytics_defs.definitions", "alerts.loader", "simulator.cli", "dashboard.__main__")


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    found = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, dest = line.split()[1:]
            found.append((sources, dest))
    return found


def _stage(dockerfile: Path, root: Path) -> Path:
    """The build context's files as the Dockerfile lays them out under WORKDIR /app."""
    app = root / "app"
    app.mkdir()
    for sources, dest in _copies(dockerfile):
        for source in sources:
            src = PROJECT_ROOT / source
            target = app / dest / src.name if dest.endswith("/") or len(sources) > 1 else app / dest
            if dest == "./":
                target = app / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "lib"), dirs_exist_ok=True)
            else:
                shutil.copy(src, target)
    return app


def test_compose_services_use_real_entry_points_and_publish_on_loopback_only():
    from stack.cli import main  # noqa: F401  (the console script exists)

    names = {s.name for s in all_services(Settings.from_env({}))}
    for name, service in COMPOSE["services"].items():
        command = service.get("command", [])
        if command[:2] == ["lakehouse", "serve"]:
            assert command[2] in names, name
        if command[:1] == ["lakehouse"]:
            assert command[1] in {"serve", "bootstrap"}, name
        if "build" in service:
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        for dep in service.get("depends_on", {}):
            assert dep in COMPOSE["services"], f"{name} depends on unknown {dep}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_dockerfile_copies_only_existing_paths():
    for dockerfile in DOCKER.glob("Dockerfile*"):
        for sources, _ in _copies(dockerfile):
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"


def test_every_entry_point_imports_from_the_files_the_image_holds(tmp_path):
    """Import each entry point with only the Dockerfile's files and the installed dependencies on the
    path: no site processing, so the checkout's editable install cannot fill a gap."""
    app = _stage(DOCKER / "Dockerfile", tmp_path)
    site = sysconfig.get_paths()["purelib"]
    script = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, *MAIN_ENTRY_POINTS],
        cwd=app, env={"PYTHONPATH": f"{app}:{site}", "LAKEHOUSE_DATA_DIR": str(tmp_path / "data"),
                      "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
    assert (app / "jvm" / "pom.xml").exists()
    assert sorted((app / "stack" / "migrations").glob("*.sql"))


def test_flink_image_holds_the_job_and_what_it_imports(tmp_path):
    app = _stage(DOCKER / "Dockerfile.flink", tmp_path)
    command = re.findall(r'"([^"]+)"', next(l for l in (DOCKER / "Dockerfile.flink").read_text().splitlines()
                                           if l.startswith("CMD")))
    assert command[:3] == ["python", "-m", "flink_cep.job"]
    # the job's imports, resolved inside the copied tree only (pyflink itself lives in the image's pip install)
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import flink_cep.settings, flink_cep.sql, flink_cep.checkpoints; print('ok')"],
        cwd=app, env={"PYTHONPATH": str(app)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
