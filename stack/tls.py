"""TLS material a managed service needs: a CA of its own and a server key with its certificate chain, made
once with openssl (Debian's) into a folder under `<data dir>/secrets`.

The folder is private (0700) and made in a temporary folder renamed into place, so an interrupted run leaves
nothing half made; the keys are 0600. `<bundle>` holds the unencrypted PKCS#8 key followed by the certificate
and the CA: Kafka reads it as its PEM key store, PostgreSQL as its key file and certificate file (OpenSSL skips
the PEM blocks it is not looking for). Clients verify the server against `ca.pem` and the certificate names
the bind host, 127.0.0.1 and localhost."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from settings import ConfigError


def ensure_server_tls(target: Path, subject: str, hosts: list[str], bundle: str, setting: str) -> Path:
    """ca.pem, ca.key and `bundle` (key + chain) in `target`, made once; `setting` names what asked for them
    (for the message when openssl is missing). Returns `target`."""
    if (target / bundle).exists():
        return target
    if shutil.which("openssl") is None:
        raise ConfigError(f"{setting} makes its certificates with openssl, which is not installed "
                          "(Debian: apt-get install openssl)")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o700)
    san = ",".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))  # mode 0700
    try:
        rsa = ["-newkey", "rsa:2048", "-noenc"]
        _openssl("req", "-x509", *rsa, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
                 "-subj", f"/CN={subject} CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work, setting=setting)
        _openssl("req", *rsa, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={subject}", cwd=work,
                 setting=setting)
        (work / "server.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "825", "-sha256", "-extfile", "server.ext", "-out", "server.crt", cwd=work, setting=setting)
        fd = os.open(work / bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join((work / name).read_text() for name in ("server.key", "server.crt", "ca.pem")))
        for name in ("server.key", "server.csr", "server.crt", "server.ext", "ca.srl"):
            (work / name).unlink(missing_ok=True)
        (work / "ca.key").chmod(0o600)
        (work / "ca.pem").chmod(0o644)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _openssl(*args: str, cwd: Path, setting: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"openssl {args[0]} failed making the TLS material for {setting}: {result.stderr.strip()}")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
