"""A real OpenSSH server for the tests: ``/usr/sbin/sshd`` on a loopback port.

:func:`start_sshd` writes a throwaway host key, a throwaway client key and a private
``sshd_config`` into a temporary folder and runs ``sshd -D -e`` (foreground, log to stderr) for
the current user, with key login only and ``internal-sftp``. It is not chrooted: the drop's base
path in the URL is an absolute folder of this machine, so each test can use its own ``tmp_path``.

Where sshd is not installed the tests are skipped with the reason, except when ``CI=true``: CI
installs Debian's ``openssh-server`` and must never skip these tests silently.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
READY_TIMEOUT = 10.0
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class OpenSshServer:
    pid: int
    """The listening sshd; each connection is served by processes below it."""
    port: int
    username: str
    client_key: Path
    """Private key (ed25519, no passphrase) that the server accepts for ``username``."""
    known_hosts: Path
    """Known-hosts file with the server's host key under ``[127.0.0.1]:port``."""
    log_path: Path

    def url(self, base: Path) -> str:
        """An ``sftp://`` drop URL for the absolute folder ``base`` on this machine."""
        return f"sftp://{self.username}@127.0.0.1:{self.port}{base.absolute()}"


def require_sshd() -> Path:
    """The sshd binary; skip (or fail under ``CI=true``) when this machine lacks it."""
    reason = None
    if not SSHD.exists():
        reason = f"OpenSSH server not installed ({SSHD} missing): apt-get install openssh-server"
    elif shutil.which("ssh-keygen") is None:
        reason = "ssh-keygen not found: apt-get install openssh-client"
    else:
        try:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        except PermissionError:
            reason = f"sshd needs {PRIVSEP_DIR}, which this user cannot create"
    if reason is None:
        return SSHD
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: CI must install it, not skip these tests)")
    pytest.skip(reason)


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dropship-tests", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    key_type, key_data = path.with_suffix(".pub").read_text().split()[:2]
    return f"{key_type} {key_data}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(folder: Path, port: int, username: str) -> Path:
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"AllowUsers {username}",
        # CI runs as root; key login only, and no password anywhere.
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The keys live in a temporary folder that StrictModes would reject.
        "StrictModes no",
        "Subsystem sftp internal-sftp",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
    ]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(8).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port} in time; see {log_path}")


@contextmanager
def start_sshd(folder: Path) -> Iterator[OpenSshServer]:
    """Run sshd for the current user until the block ends; files go into ``folder``."""
    sshd = require_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    username = getpass.getuser()
    host_key = _keygen(folder / "host_key")
    client_public = _keygen(folder / "client_key")
    (folder / "authorized_keys").write_text(client_public + "\n")
    log_path = folder / "sshd.log"

    for _attempt in range(PORT_ATTEMPTS):  # the free port may be taken before sshd binds it
        port = _free_port()
        config = _config(folder, port, username)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(sshd), "-D", "-e", "-f", str(config)], stdout=log, stderr=log
            )
        try:
            if _wait_until_ready(process, port, log_path):
                break
        except BaseException:
            process.kill()
            process.wait()
            raise
    else:
        raise RuntimeError(f"sshd would not start; see {log_path}:\n{log_path.read_text()}")

    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    try:
        yield OpenSshServer(
            pid=process.pid,
            port=port,
            username=username,
            client_key=folder / "client_key",
            known_hosts=known_hosts,
            log_path=log_path,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


@contextmanager
def sessions_paused(server: OpenSshServer) -> Iterator[list[int]]:
    """Freeze (SIGSTOP) every session process of ``server``: a server that stops answering."""
    pids = _descendants(server.pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
