"""SPARK_CLUSTER=standalone: the processes `up` would start (argv, ports, the executors' classpath), their
start order, the health reading of the master's /json, and the settings that cannot work together. Nothing
is started."""

import os

import pytest

import jvm
from settings import ConfigError, Settings
from stack.services import SparkConnect, SparkMaster, SparkWorker, all_services
from stack.services.spark_cluster import worker_alive

pytestmark = pytest.mark.unit

STANDALONE = {"SPARK_CLUSTER": "standalone"}


def _conf(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--conf")


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_connect_server_runs_on_the_master_and_gives_executors_the_drivers_jars(tmp_path):
    cfg = Settings.from_env({**STANDALONE, "LAKEHOUSE_DATA_DIR": str(tmp_path), "SPARK_EXECUTOR_MEMORY": "1536m"})
    argv = list(SparkConnect(cfg).spec().argv)
    assert _after(argv, "--master") == "spark://127.0.0.1:7077" == cfg.spark_cluster_url
    conf = _conf(argv)
    jars = conf["spark.executor.extraClassPath"].split(os.pathsep)
    assert conf["spark.executor.extraClassPath"] == conf["spark.driver.extraClassPath"]
    assert jars == [str(j) for j in jvm.spark_extra_jars(cfg.jvm_lib_dir)]
    names = {p.rsplit("/", 1)[-1] for p in jars}
    assert any(n.startswith("spark-sql-kafka-0-10") for n in names) and any(n.startswith("delta-spark") for n in names)
    assert conf["spark.executor.memory"] == "1536m"
    assert "-Dlog4j2.configurationFile=" in conf["spark.executor.extraJavaOptions"]


def test_local_mode_keeps_local_cores_and_no_executor_settings(tmp_path):
    argv = list(SparkConnect(Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})).spec().argv)
    assert _after(argv, "--master") == "local[*]"
    assert not any(key.startswith("spark.executor.") for key in _conf(argv))


def test_master_and_worker_bind_the_host_on_their_own_ports(tmp_path):
    cfg = Settings.from_env({**STANDALONE, "LAKEHOUSE_DATA_DIR": str(tmp_path), "LAKEHOUSE_BIND_HOST": "10.0.0.5",
                             "SPARK_MASTER_PORT": "17077", "SPARK_MASTER_WEBUI_PORT": "18080",
                             "SPARK_WORKER_WEBUI_PORT": "18084", "SPARK_WORKER_CORES": "2", "SPARK_WORKER_MEMORY": "3g"})
    master, worker = SparkMaster(cfg).spec(), SparkWorker(cfg).spec()
    assert master.argv[0].endswith("/pyspark/bin/spark-class") and worker.argv[0] == master.argv[0]
    assert master.argv[1] == "org.apache.spark.deploy.master.Master"
    assert (_after(master.argv, "--host"), _after(master.argv, "--port"), _after(master.argv, "--webui-port")) == (
        "10.0.0.5", "17077", "18080")
    assert master.ports == {"SPARK_MASTER_PORT": 17077, "SPARK_MASTER_WEBUI_PORT": 18080}
    assert worker.argv[1] == "org.apache.spark.deploy.worker.Worker" and worker.argv[-1] == "spark://10.0.0.5:17077"
    assert (_after(worker.argv, "--host"), _after(worker.argv, "--webui-port"), _after(worker.argv, "--cores"),
            _after(worker.argv, "--memory")) == ("10.0.0.5", "18084", "2", "3g")
    assert _after(worker.argv, "--work-dir").startswith(str(tmp_path))
    assert worker.ports == {"SPARK_WORKER_WEBUI_PORT": 18084}
    for spec in (master, worker):  # the web UIs bind where SPARK_LOCAL_IP says, else on every interface
        assert spec.env["SPARK_LOCAL_IP"] == "10.0.0.5" and spec.env["SPARK_HOME"].endswith("/pyspark")
    assert "-Dspark.master.rest.enabled=false" in master.env["SPARK_DAEMON_JAVA_OPTS"]
    # a restarted master takes its worker and applications back from its recovery folder
    assert (f"-Dspark.deploy.recoveryMode=FILESYSTEM -Dspark.deploy.recoveryDirectory={tmp_path}/spark/"
            in master.env["SPARK_DAEMON_JAVA_OPTS"])


def test_the_cluster_starts_before_the_connect_server_and_only_when_asked(tmp_path):
    names = [s.name for s in all_services(Settings.from_env({**STANDALONE, "LAKEHOUSE_DATA_DIR": str(tmp_path)}))]
    assert names.index("spark-master") + 1 == names.index("spark-worker") == names.index("spark-connect") - 1
    local = Settings.from_env({"LAKEHOUSE_DATA_DIR": str(tmp_path)})
    assert not {"spark-master", "spark-worker"} & {s.name for s in all_services(local)}
    # `down` stops a cluster also when the setting changed since `up`
    assert {"spark-master", "spark-worker"} <= {s.name for s in all_services(local, stopping=True)}


def test_worker_health_is_the_masters_word_that_it_is_alive():
    state = {"status": "ALIVE", "workers": [
        {"id": "worker-1", "state": "DEAD", "webuiaddress": "http://127.0.0.1:8084"},
        {"id": "worker-2", "state": "ALIVE", "webuiaddress": "http://127.0.0.1:9999"},
    ]}
    assert not worker_alive(state, "127.0.0.1", 8084)  # a dead registration of an earlier run
    assert worker_alive(state, "127.0.0.1", 9999)
    assert not worker_alive(None, "127.0.0.1", 9999) and not worker_alive({"workers": []}, "127.0.0.1", 9999)


@pytest.mark.parametrize(("environ", "says"), [
    ({"SPARK_CLUSTER": "yarn"}, "SPARK_CLUSTER"),
    ({**STANDALONE, "SPARK_REMOTE": "sc://spark.internal:15002"}, "unset SPARK_REMOTE"),
    ({**STANDALONE, "SPARK_MASTER": "spark://elsewhere:7077"}, "unset SPARK_MASTER"),
    ({**STANDALONE, "SPARK_WORKER_WEBUI_PORT": "8081"}, "SPARK_WORKER_WEBUI_PORT=8081 is also FLINK_REST_PORT"),
    ({**STANDALONE, "SPARK_MASTER_WEBUI_PORT": "8082"}, "also DASHBOARD_PORT"),
    ({**STANDALONE, "SPARK_EXECUTOR_MEMORY": "4g"}, "raise SPARK_WORKER_MEMORY"),
    ({"SPARK_EXECUTOR_MEMORY": "two gigs"}, "SPARK_EXECUTOR_MEMORY.*512m or 2g"),
])
def test_settings_that_cannot_work_fail_fast_saying_what_to_set(environ, says):
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(environ)


def test_a_classic_session_on_the_projects_own_master_is_allowed():
    cfg = Settings.from_env({**STANDALONE, "SPARK_MASTER": "spark://127.0.0.1:7077"})
    assert cfg.service_env()["SPARK_MASTER"] == cfg.spark_cluster_url
