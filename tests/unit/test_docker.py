"""The container files cannot be built or run here (no Docker engine); check what can be checked: Debian's
`docker-compose config` accepts the compose file, the topology is the one the README describes (three
brokers in one quorum, Spark Connect on a standalone master, a Flink session cluster, Dagster runs in
containers), every long-running service has a healthcheck and a restart policy and publishes on loopback
only, secrets come from the env file, every command is a real entry point, every COPY source exists, and
every entry point imports from exactly the files the Dockerfile copies."""

import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

from settings import PROJECT_ROOT, Settings
from stack.services import all_services

pytestmark = pytest.mark.unit

DOCKER = PROJECT_ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
# what each image runs: the console script, the code location, the `python -m` services and the Connect
# server's cluster launcher
MAIN_ENTRY_POINTS = ("stack.cli", "analytics_defs.definitions", "alerts.loader", "simulator.cli", "dashboard.__main__",
                     "spark_connect_cluster")
# values for the variables docker-compose.yml requires (docker/.env on a real host)
COMPOSE_DUMMY_ENV = {"POSTGRES_PASSWORD": "placeholder", "DOCKER_GID": "999"}


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    found = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, dest = line.split()[1:]
            found.append((sources, dest))
    return found


def _stage(dockerfile: Path, root: Path) -> Path:
    """The build context's files as the Dockerfile lays them out under `root` (relative destinations
    under WORKDIR /app); returns the staged /app."""
    app = root / "app"
    app.mkdir()
    for sources, dest in _copies(dockerfile):
        base = root / dest.lstrip("/") if dest.startswith("/") else app / dest
        for source in sources:
            src = PROJECT_ROOT / source
            target = base / src.name if dest.endswith("/") or len(sources) > 1 else base
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


# ---- the compose topology ----------------------------------------------------------------------------

def _env(service: dict) -> dict:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def _spark_connect_cluster():
    spec = importlib.util.spec_from_file_location("spark_connect_cluster", DOCKER / "spark_connect_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docker_compose_config_accepts_the_file(tmp_path):
    """Debian's docker-compose (v1.29) validates the file against the compose schema without an engine:
    interpolation, merges, depends_on conditions, healthchecks. A required secret left unset fails."""
    from stack.cli import DOCKER_COMPOSE, DOCKER_COMPOSE_HINT

    assert DOCKER_COMPOSE.exists(), f"{DOCKER_COMPOSE} is missing, so the compose file cannot be validated: {DOCKER_COMPOSE_HINT}"
    empty = tmp_path / "empty.env"  # not docker/.env: a host's real one must not decide this test
    empty.write_text("")
    command = [str(DOCKER_COMPOSE), "--env-file", str(empty), "-f", str(COMPOSE_FILE), "config", "-q"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(command, env={**env, **COMPOSE_DUMMY_ENV}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    for missing in COMPOSE_DUMMY_ENV:
        rest = {k: v for k, v in COMPOSE_DUMMY_ENV.items() if k != missing}
        result = subprocess.run(command, env={**env, **rest}, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and f"set {missing} in docker/.env" in result.stderr, result.stderr


def test_env_example_names_every_variable_with_placeholders_only():
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used <= set(example), f"docker/.env.example lacks {used - set(example)}"
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == set(COMPOSE_DUMMY_ENV)
    assert all(example[name] == "change-me" for name in required)
    assert not re.search(r"PASSWORD: (?!\$\{)", text), "a password written into docker-compose.yml"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy():
    one_shots = [name for name, service in SERVICES.items() if _one_shot(service)]
    assert one_shots == ["bootstrap"]
    for name, service in SERVICES.items():
        if _one_shot(service):
            continue
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name} has no restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        if test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")
    for name, service in SERVICES.items():
        for dep, cond in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if _one_shot(SERVICES[dep]) else cond["condition"]
            assert cond["condition"] == wanted, f"{name} waits for one-shot {dep} to start, not to finish"


def test_kafka_is_three_brokers_in_one_quorum_with_replicated_topics():
    brokers = {name: _env(s) for name, s in SERVICES.items() if s.get("image", "").startswith("apache/kafka")}
    assert len(brokers) == 3
    ids = {env["KAFKA_NODE_ID"]: name for name, env in brokers.items()}
    assert sorted(ids) == ["1", "2", "3"]
    for setting in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
        assert len({env[setting] for env in brokers.values()}) == 1, f"brokers disagree on {setting}"
    for name, env in brokers.items():
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert SERVICES[name]["volumes"][0].endswith(":" + env["KAFKA_LOG_DIRS"]), f"{name} keeps its log in the container"
    voters = dict(v.split("@") for v in next(iter(brokers.values()))["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
    assert voters == {node: f"{name}:9093" for node, name in ids.items()}, "a quorum of exactly the three brokers"

    bootstrap = SERVICES["bootstrap"]
    env = _env(bootstrap)
    assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == {f"{name}:9092" for name in brokers}
    cfg = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
                             "KAFKA_REPLICATION_FACTOR": env["KAFKA_REPLICATION_FACTOR"]})
    assert cfg.kafka_replication_factor == 3
    assert {d for d, c in bootstrap["depends_on"].items() if c["condition"] == "service_healthy"} >= set(brokers)


def test_spark_connect_runs_on_the_standalone_master():
    master, worker, connect = SERVICES["spark-master"], SERVICES["spark-worker"], SERVICES["spark-connect"]
    assert master["command"][:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    port = master["command"][master["command"].index("--port") + 1]
    url = f"spark://{master['hostname']}:{port}"
    assert worker["command"][:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert worker["command"][-1] == url
    assert connect["command"][:2] == ["python", "/app/spark_connect_cluster.py"]
    assert connect["command"][connect["command"].index("--master") + 1] == url
    assert (["docker/spark_connect_cluster.py"], "/app/spark_connect_cluster.py") in _copies(DOCKER / "Dockerfile")
    assert COMPOSE["x-lakehouse-env"]["SPARK_REMOTE"] == f"sc://{connect['hostname']}:15002"

    # what the server then runs: the stack's own spark-submit, its application on that master
    driver_host = connect["command"][connect["command"].index("--driver-host") + 1]
    assert driver_host == connect["hostname"]
    from stack.services.spark_connect import SparkConnect

    env = {k: v for k, v in _env(connect).items() if "${" not in v}  # what compose interpolates is a site value
    assert env["SPARK_CLUSTER"] == "standalone"
    spec = SparkConnect(Settings.from_env(env)).spec()
    argv = _spark_connect_cluster().on_cluster(list(spec.argv), url, driver_host)
    assert argv[0] == spec.argv[0] and argv[-1] == "spark-internal"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--master"] == [url]
    conf = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")
    assert conf["spark.driver.host"] == driver_host
    assert conf["spark.executor.extraClassPath"] == conf["spark.driver.extraClassPath"] != ""
    local_conf = dict(spec.argv[i + 1].split("=", 1) for i, a in enumerate(spec.argv) if a == "--conf")
    assert {k: v for k, v in conf.items() if k in local_conf and k != "spark.driver.host"} == {
        k: v for k, v in local_conf.items() if k != "spark.driver.host"}, "the local server's configuration is kept"


def test_flink_session_cluster_runs_the_cep_job():
    jobmanager, taskmanager, cep = SERVICES["flink-jobmanager"], SERVICES["flink-taskmanager"], SERVICES["flink-cep"]
    assert re.search(r"python3\.11/site-packages/pyflink/bin/jobmanager\.sh$", jobmanager["command"][1])
    assert taskmanager["command"][1].endswith("/pyflink/bin/taskmanager.sh")
    assert "FROM python:3.11-" in (DOCKER / "Dockerfile.flink").read_text()
    assert jobmanager["command"][2] == taskmanager["command"][2] == "start-foreground"
    assert f"jobmanager.rpc.address={jobmanager['hostname']}" in taskmanager["command"]
    assert _env(cep)["FLINK_JOBMANAGER"] == f"{jobmanager['hostname']}:8081"
    assert "rest.port=8081" in jobmanager["command"]
    # checkpoints are file:// paths under /data: the job's submitter and the cluster see one volume
    assert jobmanager["volumes"] == taskmanager["volumes"] == cep["volumes"] == ["flink-data:/data"]


def test_dagster_launches_each_run_in_a_container_of_the_image(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    from stack.services.dagster import write_dagster_yaml

    config, _ = dagster_instance_config(str(DOCKER))  # the instance schema (the launcher's own: dagster-docker)
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    # the rest is the instance `lakehouse up` writes: queues, lanes, run monitoring, retries
    local = yaml.safe_load(write_dagster_yaml(tmp_path).read_text())
    differs = {"run_launcher", "local_artifact_storage", "compute_logs"}
    assert {k: v for k, v in config.items() if k not in differs} == {k: v for k, v in local.items() if k not in differs}

    # the image holds the instance and the launcher
    dockerfile = (DOCKER / "Dockerfile").read_text()
    home = re.search(r"DAGSTER_HOME=(\S+)", dockerfile).group(1)
    assert (["docker/dagster.yaml"], f"{home}/dagster.yaml") in _copies(DOCKER / "Dockerfile")
    assert 'pip install ".[docker]"' in dockerfile
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    postgres_pin = next(d for d in extras["dependencies"] if d.startswith("dagster-postgres=="))
    assert extras["optional-dependencies"]["docker"] == [postgres_pin.replace("postgres", "docker")]

    # the run's container joins the compose network, sees the same volume and the settings the daemon has
    run = launcher["config"]
    assert run["network"] == COMPOSE["networks"]["default"]["name"]
    for mount in run["container_kwargs"]["volumes"]:
        volume, path = mount.split(":")
        assert COMPOSE["volumes"][volume]["name"] == volume and f"{volume}:{path}" in SERVICES["dagster-daemon"]["volumes"]
    assert set(run["env_vars"]) <= set(COMPOSE["x-lakehouse-env"])
    assert _env(SERVICES["dagster-code"])["DAGSTER_CURRENT_IMAGE"] == COMPOSE["x-lakehouse"]["image"]
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "/var/run/docker.sock:/var/run/docker.sock" in SERVICES[name]["volumes"], f"{name} cannot reach Docker"
