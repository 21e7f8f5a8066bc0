"""Java and the JVM artifacts of the stack, resolved once from Maven Central through jvm/pom.xml.

Ground floor beside `settings`: the supervisor (starting Kafka, Spark, Flink) and the code location
(a classic Spark session's classpath) both read the jar lists from here. The pom travels with the
package (package data), so an installed copy resolves the same artifacts.

`resolve_jars()` runs Maven per profile (kafka, spark, flink) into `jvm/lib/<profile>/` and stamps the
result with the pom's hash, so a second run is a no-op and a changed pom re-resolves. Nothing resolves
at run time: Spark sessions, the Kafka broker and the Flink job read these folders offline.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from settings import ConfigError, current

POM = Path(__file__).resolve().parent / "pom.xml"
PROFILES = ("kafka", "spark", "flink")
MIN_JAVA = 17


@cache
def java_home() -> Path:
    """JAVA_HOME, or the JDK that `java` on PATH belongs to. Fails fast when there is none >= 17."""
    candidates = []
    configured = current().java_home_dir
    if configured:
        candidates.append(configured / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    for java in candidates:
        if java.exists() and _java_major(java) >= MIN_JAVA:
            return java.parent.parent
    raise ConfigError(
        f"Java {MIN_JAVA} or newer was not found (JAVA_HOME={configured or 'unset'}). "
        f"Install it (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME to a JDK >= {MIN_JAVA}."
    )


def java_bin() -> str:
    return str(java_home() / "bin" / "java")


def _java_major(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _pom_hash(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def resolve_jars(lib_dir: Path, log_dir: Path, pom: Path = POM) -> None:
    """Resolve every profile of the pom into lib_dir/<profile>/ (idempotent)."""
    stamp = lib_dir / ".resolved"
    if stamp.exists() and stamp.read_text().strip() == _pom_hash(pom):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError("Maven (mvn) is not installed: install it (apt-get install maven); "
                          "it resolves the Kafka, Spark, Delta and Flink jars from Maven Central.")
    java_home()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "maven.log"
    for profile in PROFILES:
        target = lib_dir / profile
        if target.exists():
            shutil.rmtree(target)
        with open(log, "ab") as out:
            result = subprocess.run(
                [mvn, "-B", "-q", "-f", str(pom), "-P", profile, f"-Dlib.dir={lib_dir}", "package"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "JAVA_HOME": str(java_home())},
            )
        if result.returncode != 0:
            raise ConfigError(
                f"Maven could not resolve the '{profile}' artifacts of {pom} (log: {log}). "
                "Check access to Maven Central (or a mirror in ~/.m2/settings.xml) and the versions in the pom."
            )
    shutil.rmtree(pom.parent / "target", ignore_errors=True)
    stamp.write_text(_pom_hash(pom))


def jars(lib_dir: Path, profile: str) -> list[Path]:
    folder = lib_dir / profile
    found = sorted(folder.glob("*.jar"))
    if not found:
        raise ConfigError(f"No jars in {folder}: run `make setup` (lakehouse setup) to resolve them.")
    return found


def _artifact(jar: Path) -> str:
    """'jackson-core-2.13.5.jar' -> 'jackson-core' (the name without its version)."""
    return re.sub(r"-\d[\w.\-]*$", "", jar.stem)


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def spark_home() -> Path:
    """SPARK_HOME of the installed pyspark wheel (bin/spark-submit, bin/spark-class, jars/)."""
    return pyspark_jars_dir().parent


def spark_extra_jars(lib_dir: Path) -> list[Path]:
    """Jars Spark needs beyond the pyspark wheel (Kafka source, Delta, JDBC), minus what it ships.

    Maven brings transitive dependencies that pyspark already has in another version (Hadoop,
    Jackson, Parquet, Scala); loading both breaks Spark, so the wheel's copy wins.
    """
    shipped = {_artifact(j) for j in pyspark_jars_dir().glob("*.jar")}
    return [j for j in jars(lib_dir, "spark") if _artifact(j) not in shipped]
