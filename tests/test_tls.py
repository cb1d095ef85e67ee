"""NATS over TLS: a server with a certificate from a CA of the test's own; the services' Bus
and the CLI connect with [nats] ca_file / CS_NATS_CA_FILE, and say clearly when they cannot
verify the server."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import siteconfig
from bus import subjects
from bus.connection import Bus
from bus.errors import BusUnavailable
from bus.schemas import CloudRecord
from tests.natsserver import NatsServer


def _write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cs-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    ca, cert, key = _write_pki(tmp_path)
    conf = tmp_path / "tls.conf"
    conf.write_text(f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n')
    server = NatsServer(tmp_path / "nats", config=conf)
    server.start()
    yield server, ca
    server.stop()


async def test_services_connect_over_tls_with_the_site_ca(
    tls_server: tuple[NatsServer, Path], tmp_path: Path,
) -> None:
    server, ca = tls_server
    url = server.url.replace("nats://", "tls://")
    config = tmp_path / "cs.toml"
    config.write_text(f'site = "t"\n[nats]\nurl = "{url}"\nca_file = "{ca.name}"\n')
    site = siteconfig.load(config, {})
    assert site.nats_ca_file == str(ca)
    bus = await Bus.connect(site.nats_url, "tls-test", wait_s=5, ca_file=site.nats_ca_file)
    try:
        await bus.ensure_infra()
        record = CloudRecord(name="c1", provider="libvirt", enabled=True, max_vms=1)
        await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put("c1", record)
        got = await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).get("c1")
        assert got is not None and got.value == record
    finally:
        await bus.close()
    # Without the CA the server cannot be verified: one clear error, not a minute of retries.
    with pytest.raises(BusUnavailable, match=r"TLS with NATS at tls://.*failed.*ca_file"):
        await Bus.connect(url, "tls-test", wait_s=5)


def test_the_cli_takes_the_ca_from_the_environment(tls_server: tuple[NatsServer, Path]) -> None:
    server, ca = tls_server
    env = dict(os.environ, CS_NATS_URL=server.url.replace("nats://", "tls://"))

    def cs(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", *args],
                              capture_output=True, text=True, timeout=60,
                              env={**env, **extra})

    refused = cs("status")
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert "CS_NATS_CA_FILE" in refused.stderr and "Traceback" not in refused.stderr
    # With the CA the connection is made: nothing serves cs.admin here, and it says so.
    verified = cs("status", CS_NATS_CA_FILE=str(ca))
    assert verified.returncode == 1
    assert "no service answers on cs.admin.status" in verified.stderr
