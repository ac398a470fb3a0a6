"""The embedded SFTP server's own promises: the known-hosts file it is given, and its logins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import stat
from pathlib import Path

import pytest

from dropship_pipeline.erp.drop import open_drop
from dropship_pipeline.errors import DropError
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer

PASSWORD = "embedded sftp password"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hashed(host_name: str, salt: bytes) -> str:
    digest = hmac.new(salt, host_name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _server_line(server: EmbeddedSftpServer) -> str:
    assert server.host_key is not None
    kind, key = server.host_key.export_public_key().decode().split()[:2]
    return f"{server.host_name} {kind} {key}"


def _settings(server: EmbeddedSftpServer, known_hosts: Path, password: str) -> Settings:
    return Settings(
        supplier_id=1,
        drop_url=server.url,
        sftp_password=password,
        sftp_known_hosts=known_hosts,
    )


def test_the_known_hosts_file_keeps_other_lines_and_replaces_only_this_hosts(
    tmp_path: Path,
) -> None:
    port = _free_port()
    this_host = f"[127.0.0.1]:{port}"
    known_hosts = tmp_path / "known_hosts"
    others = [
        "# the user's own hosts",
        f"github.com {OTHER_KEY}",
        f"[127.0.0.1]:{port + 1},[localhost]:{port + 1} {OTHER_KEY}",
        f"{_hashed('example.org', b'0123456789abcdefghij')} {OTHER_KEY}",
    ]
    stale = [
        f"{this_host} {OTHER_KEY}",
        f"{_hashed(this_host, b'salt-of-twenty-bytes')} {OTHER_KEY}",
    ]
    known_hosts.write_text("\n".join([others[0], stale[0], *others[1:], stale[1]]) + "\n")
    known_hosts.chmod(0o600)

    for _ in range(2):  # a second start on the same port replaces the first one's line
        with EmbeddedSftpServer(
            tmp_path / "root",
            username="erp",
            password=PASSWORD,
            port=port,
            known_hosts_path=known_hosts,
        ) as server:
            lines = known_hosts.read_text().splitlines()
            assert lines == [*others, _server_line(server)]
            with open_drop(_settings(server, known_hosts, PASSWORD), timeout=10) as drop:
                drop.make_folder("probe")
                assert drop.exists("probe")

    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert known_hosts.exists(), "a file the caller passed is the caller's: it stays"


@pytest.mark.parametrize("password", [PASSWORD[:-1] + "X", PASSWORD + "!", ""])
def test_only_the_exact_password_logs_in(tmp_path: Path, password: str) -> None:
    with EmbeddedSftpServer(tmp_path / "root", username="erp", password=PASSWORD) as server:
        known_hosts = server.known_hosts_path
        with pytest.raises(DropError):
            open_drop(_settings(server, known_hosts, password or "-"), timeout=10)
        with open_drop(_settings(server, known_hosts, PASSWORD), timeout=10) as drop:
            drop.make_folder("probe")
            assert drop.exists("probe")
    assert [a.method for a in server.auth_attempts].count("password") == 2
