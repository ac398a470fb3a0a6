"""An SFTP server that runs inside this process, for the demo and the fast tests.

It is asyncssh's SFTP server, chrooted to one folder, on its own event loop in a background
thread. On start it makes a fresh host key and adds it to a known-hosts file (replacing only an
older line for the same host and port), so the pipeline can trust exactly this server without
turning host-key checking off::

    with EmbeddedSftpServer(root, username="erp", password="secret") as server:
        settings = dataclasses.replace(
            settings, drop_url=server.url, sftp_password="secret",
            sftp_known_hosts=server.known_hosts_path,
        )

Fault knobs (:class:`SftpFaults`, all off by default) make it stall writes, drop connections
mid-upload and refuse either kind of rename, and :attr:`EmbeddedSftpServer.auth_attempts`
records every login attempt, so tests can prove that no credential was sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncssh

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
"""Seconds allowed for the server to start listening or to shut down."""

STALL_POLL = 0.05
"""Seconds between checks whether a stalled write may go on."""


@dataclass
class SftpFaults:
    """Misbehaviour to switch on while the server runs; every field is off by default."""

    stall_writes: bool = False
    """Write requests get no answer until this is switched off again or the server stops."""

    disconnect_after_bytes: int | None = None
    """Cut a connection once it has written more than this many bytes."""

    refuse_rename: bool = False
    """Fail every plain SFTP rename, as servers that rename with link() do on some disks."""

    refuse_posix_rename: bool = False
    """Answer posix-rename@openssh.com with 'operation unsupported'."""


@dataclass(frozen=True)
class AuthAttempt:
    """One step of a client's login: ``begin`` (the first request), ``password``, ``publickey``."""

    username: str
    method: str


@dataclass
class _State:
    """What the server's callbacks, running on the server's loop, share with the owner."""

    username: str
    password: str | None
    authorized_key: asyncssh.SSHKey | None
    faults: SftpFaults = field(default_factory=SftpFaults)
    auth_attempts: list[AuthAttempt] = field(default_factory=list)
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    open_files: set[Any] = field(default_factory=set)
    """Files the sessions hold open; a session cancelled mid-request cannot close its own."""
    stopping: bool = False


class EmbeddedSftpServer:
    """An in-process SFTP server serving ``root`` on ``host:port`` (port 0: a free one).

    Logins: ``username`` with ``password``, with the private key matching ``authorized_key``
    (an asyncssh key, or a public key in OpenSSH text form), or either. ``known_hosts_path``
    defaults to a file in a private temporary folder, removed on :meth:`stop`.
    """

    def __init__(
        self,
        root: Path,
        *,
        username: str,
        password: str | None = None,
        authorized_key: asyncssh.SSHKey | str | bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        known_hosts_path: Path | None = None,
    ) -> None:
        if password is None and authorized_key is None:
            raise ValueError("EmbeddedSftpServer needs a password, an authorized key, or both.")
        if isinstance(authorized_key, str | bytes):
            authorized_key = asyncssh.import_public_key(authorized_key)
        self.root = Path(root).absolute()
        self.host = host
        self._requested_port = port
        self._state = _State(username=username, password=password, authorized_key=authorized_key)
        self._known_hosts_path = known_hosts_path
        self._private_dir: Path | None = None
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.host_key: asyncssh.SSHKey | None = None

    # -- what the pipeline needs --------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("The embedded SFTP server is not running: call start() first.")
        return self._port

    @property
    def host_name(self) -> str:
        """The host as known-hosts files write it: ``[host]:port`` unless the port is 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def known_hosts_path(self) -> Path:
        if self._known_hosts_path is None:
            raise RuntimeError("The embedded SFTP server is not running: call start() first.")
        return self._known_hosts_path

    @property
    def url(self) -> str:
        """``sftp://user@host:port/`` with the chroot at ``/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self._state.username}@{host}:{self.port}/"

    @property
    def faults(self) -> SftpFaults:
        return self._state.faults

    @faults.setter
    def faults(self, faults: SftpFaults) -> None:
        self._state.faults = faults

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        return list(self._state.auth_attempts)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen, write the known-hosts file, and return once clients can connect."""
        if self._thread is not None:
            raise RuntimeError("The embedded SFTP server is already running.")
        self.root.mkdir(parents=True, exist_ok=True)
        self._state.stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="embedded-sftp-server", daemon=True
        )
        self._thread.start()

        try:
            future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
            future.result(timeout=START_TIMEOUT)
            self._write_known_hosts()
        except BaseException:
            self.stop()
            raise
        log.info("Embedded SFTP server serves %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        """Cut every connection, stop listening and end the background thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._state.stopping = True
        try:
            if loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._shut_down(), loop)
                future.result(timeout=START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=START_TIMEOUT)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None
            self._acceptor = None
            self._port = None
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
                self._private_dir = None
                self._known_hosts_path = None
        log.info("Embedded SFTP server for %s stopped", self.root)

    def disconnect_all(self) -> None:
        """Cut every open connection now, as a crashed server or network would."""
        if self._loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._abort_connections(), self._loop)
            future.result(timeout=START_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _listen(self) -> None:
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        state = self._state
        chroot = str(self.root).encode()
        self._acceptor = await asyncssh.listen(
            self.host,
            self._requested_port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _Server(state),
            sftp_factory=_session_factory(state, chroot),
            allow_scp=False,
            agent_forwarding=False,
            allow_pty=False,
            x11_forwarding=False,
        )
        self._port = self._acceptor.get_port()

    async def _shut_down(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        await self._abort_connections()

        # Let the SFTP sessions close their files, then cancel whatever still hangs on.
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT / 2
        while others := [
            task for task in asyncio.all_tasks() if task is not asyncio.current_task()
        ]:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)
                break
            await asyncio.wait(others, timeout=remaining)
        for file_obj in list(self._state.open_files):
            file_obj.close()
        self._state.open_files.clear()

    async def _abort_connections(self) -> None:
        connections = list(self._state.connections)
        for conn in connections:
            conn.abort()
        for conn in connections:
            await conn.wait_closed()

    def _write_known_hosts(self) -> None:
        """Add this server's line to the known-hosts file, replacing an older one for the same
        host and port; every other line of a file the caller passed is kept as it was."""
        assert self.host_key is not None
        if self._known_hosts_path is None:
            self._private_dir = Path(tempfile.mkdtemp(prefix="embedded-sftp-"))
            self._known_hosts_path = self._private_dir / "known_hosts"
        path = self._known_hosts_path
        public = self.host_key.export_public_key().decode("ascii").split()

        kept: list[str] = []
        if path.exists():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if not _names_host(line, self.host_name)
            ]
        kept.append(f"{self.host_name} {public[0]} {public[1]}")

        # Written beside it and renamed, so a crash cannot leave the caller's file half-written.
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        temporary.write_text("\n".join(kept) + "\n", encoding="utf-8")
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)


def _names_host(line: str, host_name: str) -> bool:
    """Whether a known-hosts line is for ``host_name``, in plain or hashed (``|1|``) form.

    Marked lines (``@cert-authority``, ``@revoked``) and comments are never taken for it.
    """
    fields = line.split()
    if not fields or fields[0].startswith(("#", "@")):
        return False
    for pattern in fields[0].split(","):
        if pattern.startswith("|1|"):
            salt, _, digest = pattern[3:].partition("|")
            try:
                key, expected = base64.b64decode(salt), base64.b64decode(digest)
            except ValueError:
                continue
            actual = hmac.new(key, host_name.encode(), hashlib.sha1).digest()
            if hmac.compare_digest(actual, expected):
                return True
        elif pattern == host_name:
            return True
    return False


class _Server(asyncssh.SSHServer):
    """Login rules: the one user, by password and/or key; every attempt is recorded."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._state.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._state.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        self._state.auth_attempts.append(AuthAttempt(username, "begin"))
        return True

    def password_auth_supported(self) -> bool:
        return self._state.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        self._state.auth_attempts.append(AuthAttempt(username, "password"))
        expected = self._state.password
        return (
            expected is not None
            and secrets.compare_digest(username.encode(), self._state.username.encode())
            and secrets.compare_digest(password.encode(), expected.encode())
        )

    def public_key_auth_supported(self) -> bool:
        return self._state.authorized_key is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self._state.auth_attempts.append(AuthAttempt(username, "publickey"))
        authorized = self._state.authorized_key
        return (
            username == self._state.username
            and authorized is not None
            and key.public_data == authorized.public_data
        )


def _session_factory(
    state: _State, chroot: bytes
) -> Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer]:
    def factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return _Session(chan, chroot=chroot, state=state)

    return factory


class _Session(asyncssh.SFTPServer):
    """asyncssh's own file serving, with the fault knobs in front of it."""

    def __init__(self, chan: asyncssh.SSHServerChannel, *, chroot: bytes, state: _State) -> None:
        super().__init__(chan, chroot=chroot)
        self._state = state
        self._written = 0

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        self._state.open_files.add(file_obj)
        return file_obj

    def close(self, file_obj: object) -> None:
        self._state.open_files.discard(file_obj)
        super().close(file_obj)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        while (
            self._state.faults.stall_writes
            and not self._state.stopping
            and not self.channel.is_closing()
        ):
            await asyncio.sleep(STALL_POLL)
        self._written += len(data)
        limit = self._state.faults.disconnect_after_bytes
        if limit is not None and self._written > limit:
            log.debug("Cutting an SFTP connection after %d bytes written", self._written)
            self.connection.abort()
            # No answer at all, as from a dead server: the connection's end cancels this wait.
            await asyncio.sleep(START_TIMEOUT)
            raise asyncssh.SFTPConnectionLost("connection cut by the disconnect_after_bytes fault")
        result = super().write(file_obj, offset, data)
        assert isinstance(result, int)  # the base class writes to a local file synchronously
        return result

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self._state.faults.refuse_rename:
            raise asyncssh.SFTPFailure("rename refused by the refuse_rename fault")
        super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self._state.faults.refuse_posix_rename:
            raise asyncssh.SFTPOpUnsupported(
                "posix-rename refused by the refuse_posix_rename fault"
            )
        super().posix_rename(oldpath, newpath)
