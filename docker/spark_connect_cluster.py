"""The Spark Connect server of docker-compose.yml: the stack's own server (stack/services/spark_connect.py:
Delta, the Kafka source, the UI limits; with SPARK_CLUSTER=standalone, executors with the same jars) with
its application on a Spark standalone master in another container.

    python spark_connect_cluster.py --master spark://spark-master:7077 --driver-host spark-connect

The stack's own server expects its master on LAKEHOUSE_BIND_HOST; here that is 0.0.0.0, which is no
address to call, so the master is given, and so is the name the executors (in the worker's container)
call the driver back by. They load the Kafka and Delta jars from the same paths of the same image.
"""

from __future__ import annotations

import argparse
import os

from settings import current
from stack.services.spark_connect import SparkConnect

APP_RESOURCE = "spark-internal"


def on_cluster(argv: list[str], master: str, driver_host: str) -> list[str]:
    """The server's spark-submit `argv`, with its application on `master` and executors calling back
    `driver_host`."""
    options: list[str] = []
    conf: dict[str, str] = {}
    args = iter(argv[: argv.index(APP_RESOURCE)])
    for arg in args:
        if arg == "--conf":
            key, _, value = next(args).partition("=")
            conf[key] = value
        elif arg == "--master":
            next(args)  # replaced below
        else:
            options.append(arg)
    conf["spark.driver.host"] = driver_host
    conf.setdefault("spark.executor.extraClassPath", conf["spark.driver.extraClassPath"])
    confs = [a for key, value in conf.items() for a in ("--conf", f"{key}={value}")]
    return [*options, "--master", master, *confs, APP_RESOURCE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--master", required=True, help="spark://host:port of the standalone master")
    parser.add_argument("--driver-host", required=True, help="the name executors reach this container by")
    args = parser.parse_args()
    server = SparkConnect(current())
    server.prepare()
    spec = server.spec()
    argv = on_cluster(list(spec.argv), args.master, args.driver_host)
    os.execvpe(argv[0], argv, {**os.environ, **spec.env})


if __name__ == "__main__":
    main()
