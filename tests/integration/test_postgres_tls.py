"""POSTGRES_TLS on the managed cluster: it takes TLS connections only, every client URL the settings build
verifies the server against the project's CA (sslmode=verify-full), and a client that asks for no encryption
is refused. Bootstrap (databases, migrations, the dashboard's read-only role) runs over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from settings import Settings
from stack.procs import Supervisor, free_port
from stack.services import Postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_postgres(stack_root: Path) -> Iterator[Settings]:
    data = stack_root / "postgres-tls"
    data.mkdir()
    data.chmod(0o755)
    cfg = Settings(data_dir=data, postgres_port=free_port(), postgres_tls=True)
    sup, service = Supervisor(cfg.run_dir, cfg.log_dir, cfg.host), Postgres(cfg)
    service.prepare()
    try:
        sup.start(service.spec())
        service.bootstrap()
        yield cfg
    finally:
        sup.stop(service.spec())


def test_every_client_url_is_encrypted_and_verifies_the_server(tls_postgres):
    for url in (tls_postgres.postgres_url, tls_postgres.dagster_postgres_url, tls_postgres.mlflow_postgres_url,
                tls_postgres.dashboard_db_url):
        assert "sslmode=verify-full" in url
        with psycopg.connect(url, connect_timeout=5) as conn:
            ssl, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl and version.startswith("TLS"), url
    key = tls_postgres.data_dir / "postgres" / "server.pem"
    assert key.stat().st_mode & 0o777 == 0o600 and (tls_postgres.postgres_tls_dir / "ca.key").stat().st_mode & 0o777 == 0o600


def test_a_client_without_tls_or_trusting_another_ca_is_refused(tls_postgres, tmp_path):
    plain = tls_postgres.postgres_url.replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain, connect_timeout=5)
    other_ca = tmp_path / "other-ca.pem"  # a CA that did not sign the server's certificate
    other_ca.write_text((Path("/etc/ssl/certs/ca-certificates.crt")).read_text())
    wrong = tls_postgres.postgres_url.replace(str(tls_postgres.postgres_tls_dir / "ca.pem"), str(other_ca))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong, connect_timeout=5)
