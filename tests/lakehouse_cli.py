"""Running the `lakehouse` console script the way a user does, on free ports under a data dir of its own."""

import os
import socket
import subprocess
from pathlib import Path

from stack.procs import free_port, port_open

LAKEHOUSE = str(Path(os.sys.executable).parent / "lakehouse")
EXTERNAL = ("POSTGRES_URL", "KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "SPARK_REMOTE", "SPARK_MASTER")


def free_port_run(length: int) -> int:
    """A free port followed by `length - 1` free ports (Kafka node n listens on KAFKA_PORT + 2(n-1))."""
    while True:
        base = free_port()
        if base + length < 65536 and not any(port_open("127.0.0.1", p) for p in range(base, base + length)):
            return base


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
    kafka = free_port_run(2 * int(extra.get("KAFKA_BROKERS", 1)))
    env.update(
        LAKEHOUSE_DATA_DIR=str(data_dir),
        KAFKA_PORT=str(kafka),
        KAFKA_CONTROLLER_PORT=str(kafka + 1),
        POSTGRES_PORT=str(free_port()),
        MLFLOW_PORT=str(free_port()),
        DAGSTER_PORT=str(free_port()),
        DAGSTER_CODE_PORT=str(free_port()),
        SPARK_CONNECT_PORT=str(free_port()),
        SPARK_UI_PORT=str(free_port()),
        SPARK_DRIVER_MEMORY="1g",
        FLINK_REST_PORT=str(free_port()),
        DASHBOARD_PORT=str(free_port()),
        SIMULATOR_ENABLED="0",
        SIMULATOR_HISTORY_DAYS="0",  # a test that wants history asks for it (a week is 3.3M events)
    )
    env.update(extra)
    return env


def lakehouse(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    owner = {inode: pid for pid in pids for inode in socket_inodes(pid)}
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in owner:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:  # four little-endian 32-bit words
                address = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((owner[fields[9]], address.removeprefix("::ffff:"), int(hex_port, 16)))
    return found


