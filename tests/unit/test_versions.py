"""The version pins that must agree across pyproject.toml, jvm/pom.xml and flink_cep/requirements.txt."""

import re
import tomllib
import xml.etree.ElementTree as ET

import pytest

from settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _pom_properties() -> dict[str, str]:
    root = ET.parse(PROJECT_ROOT / "jvm" / "pom.xml").getroot()
    return {child.tag.split("}")[1]: child.text for child in root.find("m:properties", NS)}


def _pin(requirements: list[str], name: str) -> str:
    for req in requirements:
        match = re.match(rf"{re.escape(name)}(\[[^\]]*\])?==([\w.]+)", req)
        if match:
            return match.group(2)
    raise AssertionError(f"{name} is not pinned with ==")


def test_spark_and_delta_jars_match_the_python_packages():
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    props = _pom_properties()
    pyspark = _pin(deps, "pyspark")
    assert props["spark.version"] == pyspark
    assert props["spark.binary"] == ".".join(pyspark.split(".")[:2])
    assert props["delta.version"] == _pin(deps, "delta-spark")


def test_flink_connector_matches_the_pyflink_version():
    requirements = (PROJECT_ROOT / "flink_cep" / "requirements.txt").read_text().splitlines()
    flink = _pin(requirements, "apache-flink")
    connector = _pom_properties()["flink.kafka.connector.version"]
    assert connector.endswith("-" + ".".join(flink.split(".")[:2])), (connector, flink)


def test_dagster_packages_move_together():
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert _pin(deps, "dagster") == _pin(deps, "dagster-webserver")
    # dagster-postgres versions trail dagster's by 1.x -> 0.(x+16).y
    _major, minor, patch = _pin(deps, "dagster").split(".")
    assert _pin(deps, "dagster-postgres") == f"0.{int(minor) + 16}.{patch}"
