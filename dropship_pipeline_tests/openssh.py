"""A real OpenSSH server for the tests: ``/usr/sbin/sshd`` on a loopback port.

:func:`start_sshd` writes a throwaway host key, a throwaway client key and a private
``sshd_config`` into a temporary folder and runs ``sshd -D -e`` (foreground, log to stderr) with
key login only and ``internal-sftp``. It is not chrooted: the drop's base path in the URL is an
absolute folder of this machine; :meth:`OpenSshServer.new_folder` makes one per test.

Run as root (as CI is), it logs in as a throwaway unprivileged user instead of root, as a real
ERP drop would: a random name made with ``useradd``, its home and every served folder in a
temporary folder of the server's own, removed with ``userdel`` when the server stops; sshd then
checks the key files with ``StrictModes``. Without root or ``useradd`` it logs in as the current
user.

Where sshd is not installed the tests are skipped with the reason, except when ``CI=true``: CI
installs Debian's ``openssh-server`` and must never skip these tests silently.
"""

from __future__ import annotations

import getpass
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PORT_ATTEMPTS = 3
USER_PREFIX = "dsftp"


@dataclass(frozen=True)
class LoginUser:
    """Whom the server lets in, where its key list lives and where its folders go."""

    name: str
    uid: int
    gid: int
    authorized_keys: Path
    served_root: Path
    throwaway: bool


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
    user: LoginUser

    def url(self, base: Path) -> str:
        """An ``sftp://`` drop URL for the absolute folder ``base`` on this machine."""
        return f"sftp://{self.username}@127.0.0.1:{self.port}{base.absolute()}"

    def new_folder(self, prefix: str = "drop-") -> Path:
        """A fresh empty folder that the login user owns, for one test's drop."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.user.served_root))
        os.chown(path, self.user.uid, self.user.gid)
        return path


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


def _config(folder: Path, port: int, user: LoginUser) -> Path:
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {user.authorized_keys}",
        f"AllowUsers {user.name}",
        # Key login only, and no password anywhere; root only when the tests run as root and
        # no throwaway user could be made.
        "PermitRootLogin " + ("no" if user.throwaway else "prohibit-password"),
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # A throwaway user's key list sits in its own home with the modes sshd wants; the
        # current user's sits in a temporary folder below /tmp, which StrictModes rejects.
        "StrictModes " + ("yes" if user.throwaway else "no"),
        "Subsystem sftp internal-sftp",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
    ]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _can_make_users() -> bool:
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("useradd", "userdel"))


@contextmanager
def _login_user(folder: Path, client_public: str) -> Iterator[LoginUser]:
    """The user to log in as, with ``client_public`` in its key list, for the block's length."""
    if not _can_make_users():
        served = folder / "served"
        served.mkdir()
        keys = folder / "authorized_keys"
        keys.write_text(client_public + "\n")
        yield LoginUser(getpass.getuser(), os.getuid(), os.getgid(), keys, served, False)
        return

    # pytest's own temporary folders are open to root alone, so the user's folders live apart.
    base = Path(tempfile.mkdtemp(prefix="dropship-sshd-"))
    base.chmod(0o711)
    home = base / "home"
    name = f"{USER_PREFIX}{secrets.token_hex(4)}"
    shell = shutil.which("nologin") or "/usr/sbin/nologin"
    # "*" is no password at all; useradd's default "!" would be a locked account, which sshd
    # refuses even for key logins when PAM is off.
    command = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", shell]
    command += ["--password", "*", "--user-group", name]
    try:
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"useradd could not make the test user {name}: {exc.stderr}") from exc
    try:
        entry = pwd.getpwnam(name)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(parents=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(client_public + "\n")
        served = home / "served"
        served.mkdir()
        # StrictModes: the home, .ssh and the key list must be the user's and closed to others.
        for path, mode in ((home, 0o700), (ssh_dir, 0o700), (keys, 0o600), (served, 0o700)):
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(mode)
        yield LoginUser(name, entry.pw_uid, entry.pw_gid, keys, served, True)
    finally:
        try:
            _remove_user(name)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _remove_user(name: str) -> None:
    result = subprocess.run(["userdel", name], capture_output=True, text=True, check=False)
    with suppress(KeyError):
        grp.getgrnam(name)  # userdel leaves the group where USERGROUPS_ENAB is off
        subprocess.run(["groupdel", name], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"userdel could not remove the test user {name}: {result.stderr}")


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
    """Run sshd until the block ends; its own files go into ``folder``."""
    sshd = require_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(folder / "host_key")
    client_public = _keygen(folder / "client_key")
    log_path = folder / "sshd.log"

    with _login_user(folder, client_public) as user:
        for _attempt in range(PORT_ATTEMPTS):  # the free port may be taken before sshd binds it
            port = _free_port()
            config = _config(folder, port, user)
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
                username=user.name,
                client_key=folder / "client_key",
                known_hosts=known_hosts,
                log_path=log_path,
                user=user,
            )
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop sshd and the sessions it still serves, so that their user can be removed."""
    sessions = _descendants(process.pid)
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in sessions:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(_running(pid) for pid in sessions):
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


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
