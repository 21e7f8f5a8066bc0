"""PostgreSQL: a project-owned cluster under the data dir, unless POSTGRES_URL names a server.

The managed cluster listens on LAKEHOUSE_BIND_HOST only and asks for a password (scram-sha-256); the
superuser's password is generated once into a 0600 file under the data dir (`Settings.postgres_url`
reads it), so it never appears in a config file, on a command line or in a log. Clusters created
before passwords existed (trust on loopback) keep working with a password-less URL.

With POSTGRES_TLS the cluster accepts TLS connections only (`hostssl` in an hba file of its own, scram
passwords): the key and certificate chain come from a project CA (stack/tls.py) and every client's URL asks
for `sslmode=verify-full` against that CA (`Settings.postgres_url`).

The dashboard reads with a role of its own, `lakehouse_dashboard`: it may log in to the analytics
database and SELECT, nothing else (its sessions default to read-only transactions too). Its password is
generated the same way into a second 0600 file; bootstrap creates the role and re-grants SELECT on every
table after the migrations, so tables added by later migrations are readable as well.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from settings import DASHBOARD_DB_ROLE, ConfigError, redact, with_database
from stack.migrate import migrate
from stack.procs import ProcessSpec, apt_install, write_private
from stack.services.base import Service
from stack.tls import ensure_server_tls

SUPERUSER = "lakehouse"


def postgres_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class Postgres(Service):
    name = "postgres"

    @property
    def managed(self) -> bool:
        return self.settings.external_postgres_url is None

    @property
    def pgdata(self) -> Path:
        return self.settings.data_dir / "postgres"

    @property
    def os_user(self) -> str | None:
        """PostgreSQL refuses to run as root; as root we run it as the `postgres` OS user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ConfigError("Running as root, PostgreSQL needs the OS user 'postgres' (created by the "
                              "Debian postgresql package): apt-get install postgresql") from None
        return "postgres"

    def endpoint(self) -> str:
        return redact(self.settings.postgres_url)

    def install(self) -> None:
        if postgres_bin_dir() is not None:
            return
        if os.geteuid() != 0:
            raise ConfigError(
                "PostgreSQL server binaries were not found under /usr/lib/postgresql. Install them "
                "(sudo apt-get install postgresql) or set POSTGRES_URL to an existing server."
            )
        print("installing PostgreSQL from Debian packages (apt-get) ...", flush=True)
        apt_install(["postgresql"], "install postgresql or set POSTGRES_URL")

    def prepare(self) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._check_password_kept()
        if self.settings.postgres_tls:
            self._prepare_tls()

    def _prepare_tls(self) -> None:
        """The server's key and chain, and an hba file that takes TLS connections only, inside its data dir
        (the server's OS user must own its key file)."""
        if not self.settings.postgres_password_file.exists():
            raise ConfigError(f"POSTGRES_TLS needs a cluster with passwords, but {self.pgdata} predates them: "
                              "`lakehouse reset` it, or unset POSTGRES_TLS")
        tls = ensure_server_tls(self.settings.postgres_tls_dir, "lakehouse PostgreSQL", [self.settings.host],
                                "server.pem", "POSTGRES_TLS")
        hba = ("# written by `lakehouse up` (POSTGRES_TLS): TLS connections only\n"
               "hostssl all all 0.0.0.0/0 scram-sha-256\nhostssl all all ::/0 scram-sha-256\n")
        write_private(self.pgdata / "server.pem", (tls / "server.pem").read_text(), self.os_user)
        write_private(self.pgdata / "pg_hba_tls.conf", hba, self.os_user)

    def _initdb(self) -> None:
        bindir = postgres_bin_dir()
        if bindir is None:
            raise ConfigError("PostgreSQL is not installed: run `lakehouse setup` or set POSTGRES_URL.")
        password = self.settings.ensure_postgres_password()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        _make_traversable(self.pgdata.parent)
        if self.os_user:
            shutil.chown(self.pgdata, self.os_user, self.os_user)
        self.pgdata.chmod(0o700)
        # initdb reads the password from a file; hand it one only the server's OS user can read
        pwfile = self.pgdata.parent / ".initdb-password"
        write_private(pwfile, password + "\n", self.os_user)
        try:
            result = subprocess.run(
                [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale", "--no-instructions"],
                capture_output=True, text=True, user=self.os_user, group=self.os_user, cwd="/",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ConfigError(f"initdb failed for {self.pgdata}:\n{result.stdout}{result.stderr}")

    def _check_password_kept(self) -> None:
        try:
            scram = "scram-sha-256" in (self.pgdata / "pg_hba.conf").read_text()
        except OSError:
            return
        if scram and not self.settings.postgres_password_file.exists():
            raise ConfigError(
                f"The PostgreSQL cluster in {self.pgdata} needs its password, but "
                f"{self.settings.postgres_password_file} is gone: restore that file, or `lakehouse reset`."
            )

    def spec(self) -> ProcessSpec:
        bindir = postgres_bin_dir()
        return ProcessSpec(
            name=self.name,
            argv=[
                str(bindir / "postgres"), "-D", str(self.pgdata),
                "-c", f"listen_addresses={self.settings.host}", "-p", str(self.settings.postgres_port),
                "-c", "unix_socket_directories=", "-c", "max_connections=200",
                "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning",
                *(["-c", "ssl=on", "-c", f"ssl_cert_file={self.pgdata / 'server.pem'}",
                   "-c", f"ssl_key_file={self.pgdata / 'server.pem'}", "-c", f"hba_file={self.pgdata / 'pg_hba_tls.conf'}"]
                  if self.settings.postgres_tls else []),
            ],
            cwd=Path("/"),
            ports={"POSTGRES_PORT": self.settings.postgres_port},
            healthy=self.healthy,
            start_timeout_s=60,
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client to leave
            user=self.os_user,
        )

    def _admin_url(self) -> str:
        return with_database(self.settings.postgres_url, "postgres")

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self._admin_url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def check_external(self) -> None:
        try:
            psycopg.connect(self.settings.postgres_url, connect_timeout=5).close()
        except psycopg.Error as exc:
            raise ConfigError(
                f"PostgreSQL at POSTGRES_URL={redact(self.settings.postgres_url)} is unreachable: "
                f"{str(exc).strip().splitlines()[0]}. Set POSTGRES_URL to a reachable server, or unset it to "
                "run the project's own cluster."
            ) from None

    def bootstrap(self) -> None:
        s = self.settings
        admin = self._admin_url() if self.managed else s.postgres_url
        with psycopg.connect(admin, autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in (s.analytics_db, s.dagster_db, s.mlflow_db):
                if db in existing:
                    continue
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                except psycopg.errors.InsufficientPrivilege:
                    raise ConfigError(f"Database {db} does not exist and the POSTGRES_URL user may not "
                                      f"create it: create it, or set DAGSTER_POSTGRES_DB / MLFLOW_POSTGRES_DB.") from None
        migrate(s.postgres_url)
        if self.managed:
            self.ensure_read_only_role()

    def ensure_read_only_role(self) -> None:
        """The dashboard's login: CONNECT to the analytics database and SELECT on its tables (idempotent;
        the password follows the secrets file)."""
        s = self.settings
        password = s.ensure_dashboard_db_password()
        role = sql.Identifier(DASHBOARD_DB_ROLE)
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DASHBOARD_DB_ROLE,)).fetchone()
            verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
            conn.execute(sql.SQL("{} {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                verb, role, sql.Literal(password)))
            conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(s.analytics_db), role))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role))
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(role))


def _make_traversable(path: Path) -> None:
    """Let the postgres OS user reach its data dir through directories root created."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
