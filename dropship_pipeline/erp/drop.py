"""The ERP file drop: a local folder or an SFTP server behind one small interface.

Order files go out through :meth:`Drop.write_atomic`, confirmation files come back through
:meth:`Drop.list` and :meth:`Drop.read` and are filed away with :meth:`Drop.move`. Every path is
relative to the drop's base folder and checked before use; every name that comes back from the
drop is treated as hostile until it passes :func:`is_safe_name`.

The promises, for both implementations:

- The ERP never sees a partial file under its final name: data goes to a temporary dot-name in
  the same folder, its size is checked, and only then is it renamed.
- Nothing is ever overwritten: ``write_atomic`` and ``move`` refuse an existing target.
  Writing the same bytes again under the same name is a quiet no-op, so an upload retried after a
  crash cannot make a second file or fail.
- Every SFTP call has a deadline, the host key is checked against a known-hosts file before any
  credential is sent, and every failure is a :class:`~dropship_pipeline.errors.DropError` whose
  message names the place and what to do.

A drop object is not thread-safe; use one per run.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import re
import secrets
import socket
import stat
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from dropship_pipeline.errors import DropError, HostKeyError
from dropship_pipeline.settings import Settings, SftpTarget

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds allowed for connecting and for each SFTP request to be answered."""

DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024
"""Largest file :meth:`Drop.read` returns unless told otherwise."""

MIN_TRANSFER_RATE = 64 * 1024
"""Bytes per second below which a transfer counts as stalled; it sizes transfer deadlines."""

CHUNK_SIZE = 32 * 1024
"""Bytes per SFTP read or write request: the largest request every server must accept."""

MAX_NAME_BYTES = 255
"""Longest file name, in UTF-8 bytes, that common file systems allow."""

# Unicode categories refused in names: controls (Cc), format characters (Cf) and the line
# (Zl) and paragraph (Zp) separators, all of which hide or reorder what a log line shows.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})

_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.(?P<token>[0-9a-f]{12})\.part$", re.DOTALL)


@dataclass(frozen=True)
class DropEntry:
    """A regular file in a drop folder."""

    name: str
    size: int
    mtime: float
    """Last modification, in seconds since the epoch."""


class DropTargetExistsError(DropError, FileExistsError):
    """The target name of a write or move is taken by a different file."""


class DropFileNotFoundError(DropError, FileNotFoundError):
    """The file or folder asked for is not in the drop."""


class DropFileTooLargeError(DropError):
    """A file is larger than the reader accepts."""


def is_safe_name(name: str) -> bool:
    """Whether ``name`` may be used as one path component in the drop.

    Refused: empty names, ``.`` and ``..``, ``/`` and ``\\``, control characters (NUL, CR, LF,
    tab, DEL, C1), invisible format characters (bidi overrides such as U+202E, which make a
    name display in another order than it has, and zero-width characters), line and paragraph
    separators (U+2028, U+2029), names that are not valid UTF-8 and names longer than 255 bytes.
    A leading ``-`` is allowed: names are only ever passed to SFTP requests and ``os`` calls,
    never to a command line, and a warehouse may well name a file that way.
    """
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        return False
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in name):
        return False
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate-escaped byte from a non-UTF-8 local name
        return False
    return len(encoded) <= MAX_NAME_BYTES


def temp_name(final_name: str) -> str:
    """A fresh temporary dot-name for an upload of ``final_name``, in the same folder."""
    return f".{final_name}.{secrets.token_hex(6)}.part"


def _parts(path: str, *, folder: bool = False) -> tuple[str, ...]:
    """Split a drop-relative path into checked components; ``folder`` allows the base ("")."""
    if not isinstance(path, str):
        raise DropError(f"Drop paths must be text, got {type(path).__name__}.")
    if folder and path in ("", "."):
        return ()
    parts = tuple(path.split("/"))
    if path.startswith("/") or not all(is_safe_name(part) for part in parts):
        raise DropError(
            f"Drop path {path!r} is not a plain relative path: use names joined by '/', "
            "without '..', backslashes or control characters."
        )
    return parts


def _file_parts(path: str) -> tuple[str, str]:
    parts = _parts(path)
    return "/".join(parts[:-1]), parts[-1]


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class Drop(ABC):
    """The ERP exchange folder. Use as a context manager, or call :meth:`close`."""

    location: str
    """Where the drop is, for messages and logs; never carries a secret."""

    # The public methods hold the rules; subclasses supply these primitives, which take
    # checked drop-relative paths.

    @abstractmethod
    def _scan(self, folder: str) -> Iterator[tuple[str | bytes, int, float, bool]]:
        """Yield (name, size, mtime, is_regular_file); bytes for a name that is not UTF-8."""

    @abstractmethod
    def _size(self, path: str) -> int | None:
        """Size of whatever is at ``path`` (symlinks not followed), None when nothing is."""

    @abstractmethod
    def _read(self, path: str, max_bytes: int) -> bytes:
        """Read a file; raise DropFileTooLargeError past ``max_bytes``."""

    @abstractmethod
    def _upload(self, path: str, data: bytes) -> None:
        """Create ``path`` exclusively, write ``data`` and check the stored size."""

    @abstractmethod
    def _rename_no_replace(self, src: str, dst: str) -> None:
        """Rename; raise DropTargetExistsError when ``dst`` exists, and never replace it."""

    @abstractmethod
    def _remove(self, path: str) -> None: ...

    @abstractmethod
    def _make_folder(self, parts: tuple[str, ...]) -> None: ...

    def _can_clean_up(self) -> bool:
        """Whether a failed upload's temporary file can still be removed."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def list(self, folder: str = "") -> list[DropEntry]:
        """The regular files in ``folder``, sorted by name.

        Folders, links and anything else are left out. Names that fail :func:`is_safe_name` are
        left out too, with a warning in the log: they are never read or moved. Temporary upload
        names (leading dot, ``.part``) are included; callers skip them as the contract says.
        """
        parts = _parts(folder, folder=True)
        entries = []
        for name, size, mtime, regular in self._scan("/".join(parts)):
            if not regular:
                continue
            if isinstance(name, bytes) or not is_safe_name(name):
                log.warning("Skipped unsafe file name %r in %s/%s", name, self.location, folder)
                continue
            entries.append(DropEntry(name=name, size=size, mtime=mtime))
        entries.sort(key=lambda entry: entry.name)
        log.info("Listed %s/%s: %d files", self.location, folder, len(entries))
        return entries

    def read(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        """The bytes of a file; DropFileTooLargeError when it holds more than ``max_bytes``."""
        _parts(path)
        data = self._read(path, max_bytes)
        log.info("Read %s/%s (%d bytes)", self.location, path, len(data))
        return data

    def exists(self, path: str) -> bool:
        """Whether anything (file, folder, link) is at ``path``."""
        _parts(path)
        return self._size(path) is not None

    def write_atomic(self, path: str, data: bytes) -> None:
        """Deliver ``data`` under ``path`` so that no reader ever sees a partial file.

        Leftover temporary files of this name (from a crashed upload) are removed first. When
        ``path`` already holds exactly ``data`` this returns quietly; when it holds anything
        else, DropTargetExistsError is raised and nothing is changed.
        """
        folder, name = _file_parts(path)
        self.remove_stale_temp(folder, name)
        if self._compare(path, data) == "same":
            log.info("Kept %s/%s: already delivered with the same bytes", self.location, path)
            return

        temp = _join(folder, temp_name(name))
        renamed = False
        try:
            self._upload(temp, data)
            try:
                self._rename_no_replace(temp, path)
                renamed = True
            except DropTargetExistsError:
                if self._compare(path, data) != "same":
                    raise
                log.info("Kept %s/%s: delivered meanwhile with the same bytes", self.location, path)
                return
        finally:
            if not renamed and self._can_clean_up():
                with contextlib.suppress(DropError):
                    self._remove(temp)
        log.info("Delivered %s/%s (%d bytes)", self.location, path, len(data))

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``; DropTargetExistsError when ``dst`` exists."""
        _parts(src)
        _parts(dst)
        if self._size(dst) is not None:
            raise self._exists_error(dst, "move " + src)
        self._rename_no_replace(src, dst)
        log.info("Moved %s/%s to %s", self.location, src, dst)

    def make_folder(self, path: str) -> None:
        """Create ``path`` and any missing parents; an existing folder is fine."""
        self._make_folder(_parts(path, folder=True))
        log.info("Made folder %s/%s", self.location, path)

    def remove_stale_temp(self, folder: str, name: str | None = None, *, min_age: float = 0) -> int:
        """Remove temporary upload files left in ``folder`` by a crashed upload.

        Only names this module makes (``.<final name>.<12 hex digits>.part``) are touched; with
        ``name`` only those for that final name, with ``min_age`` only those not modified for
        that many seconds. Returns how many were removed.
        """
        parts = _parts(folder, folder=True)
        if name is not None:
            _parts(name)
        folder = "/".join(parts)
        now = time.time()
        removed = 0
        for entry_name, _size, mtime, regular in self._scan(folder):
            if not regular or isinstance(entry_name, bytes):
                continue
            match = _TEMP_NAME.match(entry_name)
            if match is None or (name is not None and match["final"] != name):
                continue
            if now - mtime < min_age:
                continue
            self._remove(_join(folder, entry_name))
            removed += 1
            log.info("Removed stale temporary file %s/%s", self.location, _join(folder, entry_name))
        return removed

    def _compare(self, path: str, data: bytes) -> Literal["absent", "same"]:
        """ "absent" or "same"; DropTargetExistsError when ``path`` holds other bytes."""
        size = self._size(path)
        if size is None:
            return "absent"
        if size == len(data) and self._read(path, len(data)) == data:
            return "same"
        raise self._exists_error(path, "write")

    def _exists_error(self, path: str, action: str) -> DropTargetExistsError:
        return DropTargetExistsError(
            f"Cannot {action} to {self.location}/{path}: a different file already has that name; "
            "nothing was overwritten, move the other file away if it is stale and run again."
        )


class LocalDrop(Drop):
    """A drop in a local folder (the default ``data/drop``)."""

    def __init__(self, base: Path | str) -> None:
        self.base = Path(base).absolute()
        self.location = str(self.base)

    def close(self) -> None:
        pass

    def _local(self, path: str) -> Path:
        parts = _parts(path, folder=True)
        if not parts:
            return self.base
        target = self.base.joinpath(*parts)
        # A link planted inside the drop must not lead a write or move outside of it.
        if not target.parent.resolve().is_relative_to(self.base.resolve()):
            raise DropError(
                f"Drop path {self.location}/{path} leads outside the drop through a link: "
                "remove the link."
            )
        return target

    @contextlib.contextmanager
    def _errors(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except DropError:
            raise
        except FileNotFoundError as exc:
            raise DropFileNotFoundError(
                f"Cannot {action} {self.location}/{path}: it does not exist ({exc.strerror}); "
                "check the name, or create the folder first with make_folder."
            ) from exc
        except OSError as exc:
            raise DropError(
                f"Cannot {action} {self.location}/{path}: {exc.strerror or exc}; "
                "check the folder's permissions and free space."
            ) from exc

    def _scan(self, folder: str) -> Iterator[tuple[str | bytes, int, float, bool]]:
        local = self._local(folder)
        with self._errors("list", folder), os.scandir(local) as scan:
            rows = []
            for entry in scan:
                info = entry.stat(follow_symlinks=False)
                name: str | bytes = entry.name
                try:
                    entry.name.encode("utf-8")
                except UnicodeEncodeError:  # not UTF-8 on disk: surrogate escapes
                    name = os.fsencode(entry.name)
                rows.append((name, info.st_size, info.st_mtime, stat.S_ISREG(info.st_mode)))
        yield from rows

    def _size(self, path: str) -> int | None:
        with self._errors("check", path):
            try:
                return self._local(path).lstat().st_size
            except FileNotFoundError:
                return None

    def _read(self, path: str, max_bytes: int) -> bytes:
        with self._errors("read", path):
            fd = os.open(self._local(path), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > max_bytes:
                    raise _too_large(self.location, path, size, max_bytes)
                data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(self.location, path, len(data), max_bytes)
        return data

    def _upload(self, path: str, data: bytes) -> None:
        local = self._local(path)
        with self._errors("write", path):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(local, flags, 0o644)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
                stored = os.fstat(file.fileno()).st_size
        if stored != len(data):
            raise _size_mismatch(self.location, path, stored, len(data))

    def _rename_no_replace(self, src: str, dst: str) -> None:
        source, target = self._local(src), self._local(dst)
        with self._errors("rename " + src + " to", dst):
            # link() fails when the target exists, which rename() would silently replace.
            try:
                os.link(source, target, follow_symlinks=False)
            except FileExistsError:
                raise self._exists_error(dst, "rename " + src) from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                # A file system without hard links: check, then rename (not race-free).
                if os.path.lexists(target):
                    raise self._exists_error(dst, "rename " + src) from None
                os.rename(source, target)
            else:
                os.unlink(source)
            _fsync_folder(target.parent)

    def _remove(self, path: str) -> None:
        with self._errors("remove", path):
            self._local(path).unlink()

    def _make_folder(self, parts: tuple[str, ...]) -> None:
        path = "/".join(parts)
        with self._errors("make folder", path):
            self._local(path).mkdir(parents=True, exist_ok=True)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _too_large(location: str, path: str, size: int, limit: int) -> DropFileTooLargeError:
    return DropFileTooLargeError(
        f"File {location}/{path} is {size} bytes, over the limit of {limit}: "
        "it was not read; split it or raise the limit."
    )


def _size_mismatch(location: str, path: str, stored: int, expected: int) -> DropError:
    return DropError(
        f"Upload to {location}/{path} stored {stored} of {expected} bytes: "
        "the file was discarded; check the drop's free space and run again."
    )


class SftpDrop(Drop):
    """A drop on an SFTP server, over one paramiko connection kept for the object's life.

    The constructor connects: it checks the host key against ``known_hosts`` before any
    credential is sent (HostKeyError when the host is unknown or its key changed), then logs in
    with the key file, the password, or both. Each later call has a deadline of ``timeout``
    seconds, transfers ``timeout`` plus the time they take at :data:`MIN_TRANSFER_RATE`. A call
    that misses its deadline or loses the connection closes the connection for good: open a new
    drop to retry.
    """

    def __init__(
        self,
        target: SftpTarget,
        *,
        known_hosts: Path,
        password: str | None = None,
        key_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.known_hosts = Path(known_hosts)
        self.host_name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        # "" is the login folder (a URL without a path); otherwise the path as given.
        base = target.base_path
        self._base = "" if base in ("", ".") else base.rstrip("/") or "/"
        shown = self._base.strip("/")
        host = f"[{target.host}]" if ":" in target.host else target.host
        netloc = f"{target.user}@{host}" + ("" if target.port == 22 else f":{target.port}")
        self.location = f"sftp://{netloc}" + (f"/{shown}" if shown else "")
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._expired = False
        self._posix_rename_refused = False
        self._connect(password, key_file)

    # -- connection ---------------------------------------------------------------------------

    def _connect(self, password: str | None, key_file: Path | None) -> None:
        if password is None and key_file is None:
            raise DropError(
                f"No credentials for {self.location}: set DROPSHIP_SFTP_PASSWORD or "
                "DROPSHIP_SFTP_KEY_FILE."
            )
        key = _load_key(key_file) if key_file is not None else None
        host_keys, known_hosts_found = self._load_known_hosts()

        try:
            sock = socket.create_connection(
                (self.target.host, self.target.port), timeout=self.timeout
            )
        except OSError as exc:
            raise DropError(
                f"Cannot reach SFTP server {self.host_name} ({exc.strerror or exc}): "
                "check DROPSHIP_DROP_URL and that the server is up."
            ) from exc
        transport = paramiko.Transport(sock)
        self._transport = transport
        for name in ("banner_timeout", "handshake_timeout", "auth_timeout", "channel_timeout"):
            setattr(transport, name, self.timeout)

        known = host_keys.lookup(self.host_name)
        if known is not None:
            _prefer_host_key_types(transport, list(known.keys()))
        try:
            with self._deadline(self.timeout):
                transport.start_client(timeout=self.timeout)
                self._check_host_key(transport, known, known_hosts_found)
                self._authenticate(transport, password, key)
                channel = transport.open_session(timeout=self.timeout)
                channel.settimeout(self.timeout)
                channel.invoke_subsystem("sftp")
                self._sftp = paramiko.SFTPClient(channel)
        except DropError:
            self.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            reason = "no answer in time" if self._expired else str(exc) or type(exc).__name__
            raise DropError(
                f"SFTP connection to {self.host_name} failed ({reason}): "
                "check that the server is up and speaks SFTP, and run again."
            ) from exc
        log.info("Connected to %s", self.location)

    def _load_known_hosts(self) -> tuple[paramiko.HostKeys, bool]:
        host_keys = paramiko.HostKeys()
        try:
            host_keys.load(str(self.known_hosts))
        except FileNotFoundError:
            return host_keys, False
        except (OSError, UnicodeDecodeError, paramiko.SSHException) as exc:
            raise HostKeyError(
                f"Known-hosts file {self.known_hosts} cannot be read ({exc}): "
                "fix DROPSHIP_SFTP_KNOWN_HOSTS."
            ) from exc
        return host_keys, True

    def _check_host_key(
        self, transport: paramiko.Transport, known: Mapping[str, paramiko.PKey] | None, found: bool
    ) -> None:
        offered = transport.get_remote_server_key()
        described = f"{offered.get_name()} key {offered.fingerprint}"
        if not known:
            missing = "" if found else " (the file does not exist)"
            raise HostKeyError(
                f"SFTP host {self.host_name} is not in the known-hosts file "
                f"{self.known_hosts}{missing}; it offered the {described}: confirm that key "
                f"with the server's operator, then add it (ssh-keyscan -p {self.target.port} "
                f"{self.target.host} prints the line)."
            )
        expected = known.get(offered.get_name())
        if expected is None or expected.asbytes() != offered.asbytes():
            raise HostKeyError(
                f"SFTP host {self.host_name} offered the {described}, which does not match the "
                f"known-hosts file {self.known_hosts}: the key changed or someone is in between; "
                "ask the server's operator before updating the file."
            )

    def _authenticate(
        self, transport: paramiko.Transport, password: str | None, key: paramiko.PKey | None
    ) -> None:
        user = self.target.user
        if key is not None:
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                if password is None:
                    raise self._login_error("key") from None
        if not transport.is_authenticated() and password is not None:
            try:
                transport.auth_password(user, password)
            except paramiko.AuthenticationException:
                raise self._login_error("password") from None
        if not transport.is_authenticated():
            raise self._login_error("key and password")

    def _login_error(self, method: str) -> DropError:
        return DropError(
            f"SFTP server {self.host_name} refused the {method} login of user "
            f"{self.target.user!r}: check DROPSHIP_SFTP_PASSWORD / DROPSHIP_SFTP_KEY_FILE."
        )

    def close(self) -> None:
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        try:
            if sftp is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    sftp.close()
        finally:
            if transport is not None:
                transport.close()
                log.info("Closed the connection to %s", self.location)

    def _can_clean_up(self) -> bool:
        return self._sftp is not None and self._transport is not None

    @contextlib.contextmanager
    def _deadline(self, seconds: float) -> Iterator[None]:
        """Close the connection if the block runs past ``seconds``.

        paramiko has no overall timeout for a transfer and none for some waits (opening the
        SFTP subsystem); closing the transport wakes every one of them with an error.
        """
        transport = self._transport

        def expire() -> None:
            self._expired = True
            if transport is not None:
                transport.close()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    @contextlib.contextmanager
    def _call(
        self, action: str, path: str, *, seconds: float | None = None
    ) -> Iterator[paramiko.SFTPClient]:
        """Run one remote step with a deadline and turn every failure into a DropError."""
        sftp = self._sftp
        if sftp is None:
            raise DropError(
                f"The connection to {self.location} is closed after an earlier failure or "
                "close(): open a new drop."
            )
        limit = self.timeout if seconds is None else seconds
        try:
            with self._deadline(limit):
                yield sftp
        except DropError:
            raise
        except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as exc:
            where = f"{self.location}/{path}" if path else self.location
            transport = self._transport
            if self._expired or isinstance(exc, TimeoutError):
                self.close()
                raise DropError(
                    f"SFTP {action} of {where} got no answer within {limit:g} seconds; the "
                    "connection was closed: check the server and run again."
                ) from exc
            # EOF, SSH and protocol errors leave the request stream unusable; an OSError with the
            # connection still up is the server's answer to this one request.
            broken = not isinstance(exc, OSError) or sftp.sock.closed
            if broken or transport is None or not transport.is_active():
                self.close()
                reason = str(exc) or type(exc).__name__
                raise DropError(
                    f"The SFTP connection was lost during {action} of {where} ({reason}): "
                    "run again."
                ) from exc
            if isinstance(exc, FileNotFoundError):
                raise DropFileNotFoundError(
                    f"SFTP {action} of {where} failed: it does not exist; check the name, or "
                    "create the folder first with make_folder."
                ) from exc
            if isinstance(exc, PermissionError):
                raise DropError(
                    f"SFTP {action} of {where} was refused: permission denied; ask the server's "
                    "operator for write access."
                ) from exc
            said = str(exc) or "nothing more"
            raise DropError(
                f"SFTP {action} of {where} failed (the server said: {said}); check the path "
                "and the server's free space."
            ) from exc

    def _remote(self, path: str) -> str:
        if not path:
            return self._base or "."
        return posixpath.join(self._base, path) if self._base else path

    def _transfer_seconds(self, size: int) -> float:
        return self.timeout + size / MIN_TRANSFER_RATE

    # -- primitives ---------------------------------------------------------------------------

    def _scan(self, folder: str) -> Iterator[tuple[str | bytes, int, float, bool]]:
        rows = []
        with self._call("list", folder) as sftp:
            # paramiko's listdir_attr decodes names strictly, so a single non-UTF-8 name (a
            # Latin-1 file from a Windows warehouse, say) would hide the whole folder. The same
            # READDIR loop here keeps raw bytes and lets list() skip just that name.
            kind, msg = sftp._request(CMD_OPENDIR, self._remote(folder))
            if kind != CMD_HANDLE:
                raise paramiko.SFTPError("expected a handle")
            handle = msg.get_binary()
            while True:
                try:
                    kind, msg = sftp._request(CMD_READDIR, handle)
                except EOFError:
                    break
                if kind != CMD_NAME:
                    raise paramiko.SFTPError("expected a name list")
                for _ in range(msg.get_int()):
                    raw = msg.get_string()
                    longname = msg.get_string()
                    attrs = paramiko.SFTPAttributes._from_msg(msg, raw, longname)
                    if raw in (b".", b".."):
                        continue
                    try:
                        name: str | bytes = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        name = raw
                    regular = attrs.st_mode is not None and stat.S_ISREG(attrs.st_mode)
                    rows.append((name, attrs.st_size or 0, float(attrs.st_mtime or 0), regular))
            sftp._request(CMD_CLOSE, handle)
        yield from rows

    def _size(self, path: str) -> int | None:
        with self._call("check", path) as sftp:
            try:
                return sftp.lstat(self._remote(path)).st_size or 0
            except FileNotFoundError:
                return None

    def _read(self, path: str, max_bytes: int) -> bytes:
        with self._call("read", path) as sftp:
            size = sftp.lstat(self._remote(path)).st_size or 0
        if size > max_bytes:
            raise _too_large(self.location, path, size, max_bytes)

        chunks: list[bytes] = []
        total = 0
        seconds = self._transfer_seconds(size)
        with (
            self._call("read", path, seconds=seconds) as sftp,
            sftp.open(self._remote(path), "rb") as file,
        ):
            if size:
                file.prefetch(size)
            while chunk := file.read(CHUNK_SIZE):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise _too_large(self.location, path, total, max_bytes)
        return b"".join(chunks)

    def _upload(self, path: str, data: bytes) -> None:
        remote = self._remote(path)
        with self._call("upload", path, seconds=self._transfer_seconds(len(data))) as sftp:
            file = sftp.open(remote, "wxb")  # x: exclusive create, never an existing file
            closed = False
            try:
                file.set_pipelined(True)
                view = memoryview(data)
                for offset in range(0, len(data), CHUNK_SIZE):
                    file.write(view[offset : offset + CHUNK_SIZE])
                file.close()  # waits for every write to be acknowledged
                closed = True
            finally:
                if not closed and self._transport is not None and self._transport.is_active():
                    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                        file.close()
            stored = sftp.stat(remote).st_size
        if stored != len(data):
            raise _size_mismatch(self.location, path, stored or 0, len(data))

    def _rename_no_replace(self, src: str, dst: str) -> None:
        old, new = self._remote(src), self._remote(dst)
        with self._call("rename " + src + " to", dst) as sftp:
            try:
                # SFTP v3 RENAME must fail when the target exists.
                sftp.rename(old, new)
                return
            except OSError as exc:
                if not self._still_connected():
                    raise
                refusal: OSError = exc

            # RENAME also fails on servers that implement it with link() on file systems
            # without hard links. posix-rename replaces, so it is tried only once the target is
            # known to be absent, and only until the server refuses it once.
            if self._exists_remote(sftp, new):
                raise self._exists_error(dst, "rename " + src)
            if not self._posix_rename_refused:
                try:
                    sftp.posix_rename(old, new)
                    return
                except OSError as exc:
                    if not self._still_connected():
                        raise
                    self._posix_rename_refused = True
                    log.info("SFTP server %s refused posix-rename: %s", self.host_name, exc)
            raise refusal

    def _exists_remote(self, sftp: paramiko.SFTPClient, remote: str) -> bool:
        try:
            sftp.lstat(remote)
        except FileNotFoundError:
            return False
        return True

    def _still_connected(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_active() and not self._expired

    def _remove(self, path: str) -> None:
        with self._call("remove", path) as sftp:
            sftp.remove(self._remote(path))

    def _make_folder(self, parts: tuple[str, ...]) -> None:
        done: list[str] = []
        for part in parts:
            done.append(part)
            path = "/".join(done)
            remote = self._remote(path)
            with self._call("make folder", path) as sftp:
                try:
                    mode = sftp.stat(remote).st_mode
                except FileNotFoundError:
                    try:
                        sftp.mkdir(remote)
                        continue
                    except OSError:
                        if not self._still_connected():
                            raise
                        mode = sftp.stat(remote).st_mode  # made meanwhile by someone else?
                if mode is None or not stat.S_ISDIR(mode):
                    raise DropError(
                        f"Cannot make folder {self.location}/{path}: a file has that name; "
                        "move it away."
                    )


def _prefer_host_key_types(transport: paramiko.Transport, known_types: list[str]) -> None:
    """Ask first for the key types known for this host, so that a host with several keys
    shows the one we can check rather than another one we would then refuse."""
    options = transport.get_security_options()
    wanted: list[str] = []
    for key_type in known_types:
        wanted += ["rsa-sha2-512", "rsa-sha2-256"] if key_type == "ssh-rsa" else [key_type]
    available = list(options.key_types)
    first = [name for name in wanted if name in available]
    options.key_types = tuple(first + [name for name in available if name not in first])


def _load_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise DropError(
            f"SFTP key file {path} is protected by a passphrase, which is not supported: "
            "use a key without one, kept readable only by this user."
        ) from None
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise DropError(
            f"SFTP key file {path} cannot be loaded ({exc}): check DROPSHIP_SFTP_KEY_FILE."
        ) from exc


def open_drop(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> Drop:
    """The drop ``DROPSHIP_DROP_URL`` names: an SFTP server (connected) or a local folder."""
    target = settings.sftp
    if target is None:
        return LocalDrop(Path(settings.drop_url))
    return SftpDrop(
        target,
        known_hosts=settings.sftp_known_hosts,
        password=settings.sftp_password,
        key_file=settings.sftp_key_file,
        timeout=timeout,
    )
