"""TLS and secret material for the emulator, generated on first start and kept in the state directory.

A private CA (trustme) signs a server certificate for the loopback names. Clients trust the CA through
``connection_verify=<ca.pem>``, never by turning verification off or by replacing REQUESTS_CA_BUNDLE, so a
process can talk to the emulator and to real Azure at the same time.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert_chain: Path
    key: Path


@dataclass(frozen=True)
class Secrets:
    identity_header: str
    admin_key: str
    token_key: bytes


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def ensure_tls(state_dir: Path) -> TlsFiles:
    tls_dir = state_dir / "tls"
    files = TlsFiles(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server-key.pem")
    if files.ca.exists() and files.cert_chain.exists() and files.key.exists():
        return files
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="georep emulator", organization_unit_name="local CA")
    cert = ca.issue_cert(*HOSTS)
    files.ca.write_bytes(ca.cert_pem.bytes())
    files.cert_chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    _write_private(files.key, cert.private_key_pem.bytes())
    return files


def ensure_secrets(state_dir: Path) -> Secrets:
    path = state_dir / "secrets.json"
    if path.exists():
        data = json.loads(path.read_text())
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "identity_header": secrets.token_urlsafe(24),
            "admin_key": secrets.token_urlsafe(24),
            "token_key": secrets.token_hex(32),
        }
        _write_private(path, json.dumps(data).encode())
    return Secrets(data["identity_header"], data["admin_key"], bytes.fromhex(data["token_key"]))
