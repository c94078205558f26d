"""A private MariaDB server with TLS, and the certificates it needs (tests/scenarios/test_tls.py).

The certificates are made here with ``cryptography`` (a CA, a server certificate signed by
it, and a second, unrelated CA). The server is the machine's own ``mariadbd``, on a data
directory, port and socket of its own, so the shared server on 3306 is never touched.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.emulators import free_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
START_SECONDS = 60


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its certificate and its key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def make_authority(name: str) -> Authority:
    """A self-signed CA called ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(authority: Authority, names: list[str], *, client: bool = False) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) signed by ``authority``; ``names`` become its SAN
    (an IP address as an IP SAN). Without a SAN no modern client accepts a host name."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(names[0] if names else "client", authority.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(authority.key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` readable by its owner only (keys are secrets)."""
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


class PrivateMariaDB:
    """``mariadbd`` on a free port of 127.0.0.1, its own data directory and socket, started
    with ``options`` besides the common ones (also used by tests/replica_mariadb.py).

    Root connects through the socket (no password: the test's own throwaway server);
    everyone else over TCP to 127.0.0.1.
    """

    def __init__(self, options: Sequence[str] = (), prefix: str = "partyhelp-mariadb-") -> None:
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.datadir = self.base / "data"
        self.socket = str(self.base / "mariadbd.sock")
        self.port = free_port()
        self.log = self.base / "mariadbd.log"
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def admin(self) -> dict[str, Any]:
        """pymysql.connect() arguments for root, through the socket."""
        return {"unix_socket": self.socket, "user": "root", "password": ""}

    def start(self) -> None:
        """Initialise the data directory, start the server and wait until it answers."""
        subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'mariadbd.pid'}",
                f"--log-error={self.log}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                *self.options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # its own group: a Ctrl-C of pytest does not reach it
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {self.log.read_text()[-2000:]}")
            try:
                pymysql.connect(**self.admin, connect_timeout=2).close()
                return
            except pymysql.MySQLError:
                time.sleep(0.2)
        raise RuntimeError(
            f"mariadbd did not answer in {START_SECONDS}s: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        """Stop the server (our own process, by its pid) and wipe its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # mariadbd shuts down cleanly on SIGTERM
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)

    def sql(
        self, statement: str, params: Any = None, database: str | None = None
    ) -> list[tuple[Any, ...]]:
        """One statement as root; its rows."""
        with (
            pymysql.connect(**self.admin, database=database, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, params)
            return list(cursor.fetchall())


class TlsMariaDB(PrivateMariaDB):
    """A ``PrivateMariaDB`` with TLS and no binary log."""

    def __init__(self, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        tls = [f"--ssl-ca={ca_file}", f"--ssl-cert={cert_file}", f"--ssl-key={key_file}"]
        super().__init__(["--skip-log-bin", *tls], prefix="partyhelp-tls-mariadb-")
        self.tls = (ca_file, cert_file, key_file)


@contextmanager
def tls_mariadb(ca_file: Path, cert_file: Path, key_file: Path) -> Iterator[TlsMariaDB]:
    """A started ``TlsMariaDB``, stopped and wiped afterwards, even on failure."""
    server = TlsMariaDB(ca_file, cert_file, key_file)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def port_answers(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


__all__ = [
    "Authority",
    "PrivateMariaDB",
    "TlsMariaDB",
    "issue",
    "make_authority",
    "port_answers",
    "tls_mariadb",
    "write_private",
]
