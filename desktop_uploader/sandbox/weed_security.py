"""What closes the sandbox's SeaweedFS to every local process but weed itself: keys and certificates.

``weed mini`` listens on 127.0.0.1, which every process of every user on the machine can reach. Only
S3 (with the sandbox's credentials) is meant as a way in; everything else is closed here:

- gRPC (master, volume, filer, S3, admin, each on its HTTP port + 10000, and on the Unix sockets
  weed makes in /tmp): mutual TLS. A CA made at each start signs one certificate that every weed
  component presents and asks for, so a client without it fails the TLS handshake, and a client
  speaking plaintext HTTP/2 gets the connection closed.
- The master's, the filer's and the admin server's HTTP: HTTPS with the same client certificate
  required. ``-disableHttp`` also takes the master's and the filer's data API away (/dir/assign,
  /dir/lookup, /vol/*, the filer's files); the master's status page and /cluster/status have no such
  switch, so TLS is what closes them. Nothing in weed calls these ports over HTTP: S3 uses gRPC and
  the volume server.
- The volume server's HTTP stays plain, because S3 stores and fetches the bytes through it: it
  needs a JWT signed with keys new at each start (``jwt.signing``, read and write) and serves no UI.
  It still answers ``/status`` and ``/healthz`` (disk usage, no data), and
  ``Access-Control-Allow-Origin: *`` on its refusals: that is hard-coded in weed. HTTPS with client
  certificates works there too, but then weed's graceful stop waits 30 s for connections its own S3
  client opened and never used, so the sandbox's stop would end in SIGKILL.
- The filer's HTTP API (already closed by the points above) also needs a JWT (``jwt.filer_signing``).

weed reads ``$HOME/.seaweedfs/security.toml`` and its HOME is its store (see
``seaweed.clean_environment``), so nothing in the user's environment (``WEED_*`` variables included)
changes this. Everything is written fresh at each start, 0600 in a 0700 folder: a restart on an
existing store needs nothing from the previous run.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FOLDER = ".seaweedfs"
# Every component weed mini runs reads its own [grpc.<name>] section; one left out would talk or listen
# in plaintext, or fail to reach the others.
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq", "client")
# HTTP servers nothing inside weed calls: they require the client certificate too.
HTTPS_COMPONENTS = ("master", "filer", "admin")
_JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
_VALIDITY = datetime.timedelta(days=3650)  # made anew at each start; only a run this long would outlive it


@dataclass(frozen=True)
class WeedSecurity:
    """Where weed's security settings are; ``cert`` and ``key`` are what lets a client in."""

    config: Path
    ca: Path
    cert: Path
    key: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, replacing it atomically."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if os.name == "posix":  # a leftover partial file keeps its mode through O_TRUNC
                os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A new CA and one certificate it signs, for server and client use; returns (ca, cert, key).

    ECDSA P-256 takes milliseconds. weed does not check host names on gRPC; the certificate names
    127.0.0.1 and localhost anyway, for clients that do (HTTPS).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + _VALIDITY  # an hour of slack for clock steps
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Desktop Uploader sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weed")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "weed.pem", folder / "weed.key")
    write_private(paths[0], ca.public_bytes(serialization.Encoding.PEM))
    write_private(paths[1], cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(paths[2], key_pem)
    return paths


def _toml_string(value: str | Path) -> str:
    # JSON's string syntax is TOML's basic string for paths: backslashes (Windows) and quotes escaped.
    return json.dumps(str(value), ensure_ascii=False)


def security_toml(ca: Path, cert: Path, key: Path) -> str:
    """The settings described in the module docstring, with fresh JWT keys."""
    lines: list[str] = []
    for name in _JWT_SECTIONS:
        lines += [f"[{name}]", f'key = "{secrets.token_hex(32)}"', "expires_after_seconds = 60", ""]
    lines += ["[access]", "ui = false", ""]  # the volume server's status page
    lines += ["[grpc]", f"ca = {_toml_string(ca)}", ""]
    for component in GRPC_COMPONENTS:
        lines += [f"[grpc.{component}]", f"cert = {_toml_string(cert)}", f"key = {_toml_string(key)}", ""]
    for component in HTTPS_COMPONENTS:
        lines += [f"[https.{component}]", f"cert = {_toml_string(cert)}", f"key = {_toml_string(key)}"]
        lines += [f"ca = {_toml_string(ca)}", ""]  # a CA here means: client certificates required
    return "\n".join(lines)


def write_security(home: Path) -> WeedSecurity:
    """Write weed's ``security.toml`` and the certificates it names into ``home``/.seaweedfs (0700)."""
    folder = home / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca, cert, key = make_certificates(folder)
    config = folder / "security.toml"
    write_private(config, security_toml(ca, cert, key).encode("utf-8"))
    return WeedSecurity(config=config, ca=ca, cert=cert, key=key)
