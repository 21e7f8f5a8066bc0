"""The container files cannot be built here (no Docker engine); check what can be checked: the
compose file parses, every command is a real entry point, every COPY source exists."""

import re

import pytest
import yaml

from stack.config import PROJECT_ROOT

pytestmark = pytest.mark.unit

DOCKER = PROJECT_ROOT / "docker"


def test_compose_services_use_real_entry_points():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    from stack.cli import main  # noqa: F401  (the console script exists)
    from stack.config import StackConfig
    from stack.services import all_services

    names = {s.name for s in all_services(StackConfig.from_env({}))}
    for name, service in compose["services"].items():
        command = service.get("command", [])
        if command[:2] == ["lakehouse", "serve"]:
            assert command[2] in names, name
        if command[:1] == ["lakehouse"]:
            assert command[1] in {"serve", "bootstrap"}, name
        if "build" in service:
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        for dep in service.get("depends_on", {}):
            assert dep in compose["services"], f"{name} depends on unknown {dep}"


def test_dockerfile_copies_only_existing_paths():
    for dockerfile in DOCKER.glob("Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            match = re.match(r"COPY (?!--from)(\S+)", line)
            if match:
                assert (PROJECT_ROOT / match.group(1)).exists(), f"{dockerfile.name}: {line}"
