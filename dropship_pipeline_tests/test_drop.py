"""The ERP file drop, the same behaviour over a local folder, the embedded SFTP server and a
real OpenSSH server; then what only SFTP has: host keys, logins, dropped connections, deadlines.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import paramiko
import pytest

from dropship_pipeline.erp.drop import (
    Drop,
    DropEntry,
    DropFileNotFoundError,
    DropFileTooLargeError,
    DropTargetExistsError,
    LocalDrop,
    SftpDrop,
    is_safe_name,
    open_drop,
)
from dropship_pipeline.errors import DropError, HostKeyError
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer, SftpFaults
from dropship_pipeline_tests.openssh import OpenSshServer, sessions_paused

PASSWORD = "correct horse battery staple"
PAYLOAD = os.urandom(6 * 1024 * 1024)


@dataclass
class Backend:
    """One way to reach a drop whose files live in the local folder ``root``."""

    kind: str
    root: Path
    settings: Settings
    embedded: EmbeddedSftpServer | None = None
    openssh: OpenSshServer | None = None

    def open(self, *, timeout: float = 10.0) -> Drop:
        return open_drop(self.settings, timeout=timeout)

    def make_dir(self, path: str) -> Path:
        """A folder in the drop, made from outside as the warehouse would, owned by the user
        the drop logs in as (the OpenSSH server's may be another one than this process's)."""
        folder = self.root / path
        folder.mkdir()
        if self.openssh is not None:
            os.chown(folder, self.openssh.user.uid, self.openssh.user.gid)
        return folder


def _settings(drop_url: str, **sftp: object) -> Settings:
    return Settings(supplier_id=1, drop_url=drop_url, **sftp)  # type: ignore[arg-type]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedSftpServer]:
    with EmbeddedSftpServer(tmp_path / "drop", username="erp", password=PASSWORD) as server:
        yield server


def _embedded_backend(server: EmbeddedSftpServer) -> Backend:
    settings = _settings(
        server.url, sftp_password=PASSWORD, sftp_known_hosts=server.known_hosts_path
    )
    return Backend("embedded", server.root, settings, embedded=server)


def _openssh_backend(server: OpenSshServer) -> Backend:
    root = server.new_folder()
    settings = _settings(
        server.url(root), sftp_key_file=server.client_key, sftp_known_hosts=server.known_hosts
    )
    return Backend("openssh", root, settings, openssh=server)


@pytest.fixture(params=["local", "embedded", pytest.param("openssh", marks=pytest.mark.openssh)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "drop"
        root.mkdir()
        return Backend("local", root, _settings(str(root)))
    if request.param == "embedded":
        return _embedded_backend(request.getfixturevalue("embedded"))
    return _openssh_backend(request.getfixturevalue("openssh_server"))


@pytest.fixture(params=["embedded", pytest.param("openssh", marks=pytest.mark.openssh)])
def sftp_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "embedded":
        return _embedded_backend(request.getfixturevalue("embedded"))
    return _openssh_backend(request.getfixturevalue("openssh_server"))


@pytest.fixture
def credential_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every login method paramiko is asked to use, recorded before it sends anything."""
    calls: list[str] = []
    for method in ("auth_password", "auth_publickey", "auth_interactive", "auth_none"):
        original = getattr(paramiko.Transport, method)

        def spy(self: paramiko.Transport, *args: object, _m=method, _o=original, **kw: object):
            calls.append(_m)
            return _o(self, *args, **kw)

        monkeypatch.setattr(paramiko.Transport, method, spy)
    return calls


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# -- the same behaviour everywhere --------------------------------------------------------------


def test_list_shows_regular_files_with_size_and_time(backend: Backend) -> None:
    backend.make_dir("orders")
    (backend.root / "orders" / "b.csv").write_bytes(b"12345")
    (backend.root / "orders" / "a.csv").write_bytes(b"")
    os.utime(backend.root / "orders" / "b.csv", (1_700_000_000, 1_700_000_000))
    (backend.root / "orders" / "sub").mkdir()
    (backend.root / "orders" / "link.csv").symlink_to(backend.root / "orders" / "b.csv")

    with backend.open() as drop:
        entries = drop.list("orders")

    assert [entry.name for entry in entries] == ["a.csv", "b.csv"]
    assert entries[1] == DropEntry(name="b.csv", size=5, mtime=1_700_000_000.0)
    assert entries[0].size == 0


def test_read_returns_the_bytes_and_refuses_what_is_too_large(backend: Backend) -> None:
    (backend.root / "c.csv").write_bytes(b"order_id\r\n42\r\n")

    with backend.open() as drop:
        assert drop.read("c.csv") == b"order_id\r\n42\r\n"
        assert drop.exists("c.csv")
        assert not drop.exists("missing.csv")
        with pytest.raises(DropFileTooLargeError, match=r"c\.csv is 14 bytes"):
            drop.read("c.csv", max_bytes=10)
        with pytest.raises(DropFileNotFoundError, match=r"missing\.csv"):
            drop.read("missing.csv")


def test_write_atomic_delivers_the_bytes_and_leaves_no_temporary_file(backend: Backend) -> None:
    with backend.open() as drop:
        drop.make_folder("orders")
        drop.write_atomic("orders/orders_20261203T101500Z_abc.csv", PAYLOAD)

    assert _files(backend.root) == ["orders/orders_20261203T101500Z_abc.csv"]
    assert (backend.root / "orders/orders_20261203T101500Z_abc.csv").read_bytes() == PAYLOAD


def test_write_atomic_refuses_different_bytes_and_accepts_the_same_again(backend: Backend) -> None:
    with backend.open() as drop:
        drop.write_atomic("x.csv", b"first")
        drop.write_atomic("x.csv", b"first")
        with pytest.raises(DropTargetExistsError, match=r"x\.csv"):
            drop.write_atomic("x.csv", b"other")
        with pytest.raises(DropTargetExistsError):
            drop.write_atomic("x.csv", b"firsT")

    assert _files(backend.root) == ["x.csv"]
    assert (backend.root / "x.csv").read_bytes() == b"first"


def test_write_atomic_into_a_missing_folder_fails_cleanly(backend: Backend) -> None:
    with backend.open() as drop, pytest.raises(DropError, match="nowhere"):
        drop.write_atomic("nowhere/x.csv", b"data")
    assert _files(backend.root) == []


def test_write_atomic_removes_leftovers_of_a_crashed_upload_first(backend: Backend) -> None:
    (backend.root / ".x.csv.0123456789ab.part").write_bytes(b"half")
    (backend.root / ".y.csv.0123456789ab.part").write_bytes(b"another file's upload")
    (backend.root / ".x.csv.tmp").write_bytes(b"not ours")

    with backend.open() as drop:
        drop.write_atomic("x.csv", b"whole")

    assert _files(backend.root) == [".x.csv.tmp", ".y.csv.0123456789ab.part", "x.csv"]


def test_move_files_away_and_never_overwrites(backend: Backend) -> None:
    backend.make_dir("in")
    (backend.root / "in" / "a.csv").write_bytes(b"a")
    (backend.root / "in" / "b.csv").write_bytes(b"b")

    with backend.open() as drop:
        drop.make_folder("in/processed")
        drop.move("in/a.csv", "in/processed/a.csv")
        (backend.root / "in" / "processed" / "b.csv").write_bytes(b"older b")
        with pytest.raises(DropTargetExistsError, match=r"b\.csv"):
            drop.move("in/b.csv", "in/processed/b.csv")

    assert (backend.root / "in/processed/a.csv").read_bytes() == b"a"
    assert (backend.root / "in/processed/b.csv").read_bytes() == b"older b"
    assert (backend.root / "in/b.csv").read_bytes() == b"b"


def test_make_folder_makes_parents_and_accepts_existing_ones(backend: Backend) -> None:
    backend.make_dir("confirmations")
    (backend.root / "blocked").write_bytes(b"a file, not a folder")

    with backend.open() as drop:
        drop.make_folder("confirmations/rejected/2026/12")
        drop.make_folder("confirmations/rejected/2026/12")
        with pytest.raises(DropError, match="blocked"):
            drop.make_folder("blocked/sub")

    assert (backend.root / "confirmations/rejected/2026/12").is_dir()


def test_hostile_names_from_the_drop_are_skipped(backend: Backend) -> None:
    for name in ("ok.csv", "-leading-dash.csv", "new\nline.csv", "tab\t.csv", "back\\slash.csv"):
        (backend.root / name).write_bytes(b"x")
    (backend.root / os.fsdecode(b"caf\xe9-latin1.csv")).write_bytes(b"x")
    (backend.root / "esc\x1b[31m.csv").write_bytes(b"x")
    (backend.root / "invoice\u202evsc.exe").write_bytes(b"x")
    (backend.root / "line\u2028sep.csv").write_bytes(b"x")

    with backend.open() as drop:
        names = [entry.name for entry in drop.list()]

    assert names == ["-leading-dash.csv", "ok.csv"]


@pytest.mark.parametrize(
    "path",
    ["../escape.csv", "/etc/passwd", "orders/../../x", "a\\b.csv", "a//b", "x\x00y", "", "a/"],
)
def test_hostile_paths_are_refused_before_any_io(backend: Backend, path: str) -> None:
    with backend.open() as drop:
        for call in (
            lambda: drop.write_atomic(path, b"x"),
            lambda: drop.read(path),
            lambda: drop.move("a.csv", path),
        ):
            with pytest.raises(DropError, match="not a plain relative path"):
                call()
    assert _files(backend.root) == []


def test_names_are_checked_as_documented() -> None:
    assert is_safe_name("orders_20261203T101500Z_abc.csv")
    assert is_safe_name("Bestätigung ünd ✓.csv")
    assert is_safe_name("-x.csv")
    assert is_safe_name("a..b.csv")
    for bad in ("", ".", "..", "a/b", "a\\b", "nul\x00", "del\x7f", "c1\x85", "x" * 256):
        assert not is_safe_name(bad)
    # Format characters and separators: a right-to-left override shows "invoice\u202evsc.exe"
    # as "invoiceexe.csv"; the others hide in a name or break a log line.
    for bad in ("invoice\u202evsc.exe", "rlm\u200f.csv", "zw\u200bsp.csv", "bom\ufeff.csv"):
        assert not is_safe_name(bad)
    for bad in ("line\u2028sep.csv", "para\u2029sep.csv"):
        assert not is_safe_name(bad)
    assert is_safe_name("no\u00a0break space.csv")  # a visible space, category Zs


def test_a_link_inside_a_local_drop_cannot_lead_outside(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "drop" / "orders").symlink_to(tmp_path / "outside")

    with LocalDrop(tmp_path / "drop") as drop, pytest.raises(DropError, match="outside the drop"):
        drop.write_atomic("orders/x.csv", b"x")
    assert list((tmp_path / "outside").iterdir()) == []


def test_open_drop_picks_the_local_folder_for_a_path(tmp_path: Path) -> None:
    drop = open_drop(_settings(str(tmp_path)))
    assert isinstance(drop, LocalDrop)
    assert drop.base == tmp_path


# -- SFTP only -----------------------------------------------------------------------------------


def test_an_unknown_host_is_refused_before_any_credential(
    sftp_backend: Backend, tmp_path: Path, credential_spy: list[str]
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("# nothing trusted yet\n")
    settings = _settings(
        sftp_backend.settings.drop_url,
        sftp_password=PASSWORD,
        sftp_key_file=sftp_backend.settings.sftp_key_file,
        sftp_known_hosts=empty,
    )

    with pytest.raises(HostKeyError) as caught:
        open_drop(settings, timeout=5)

    message = str(caught.value)
    assert "[127.0.0.1]:" in message and str(empty) in message and "SHA256:" in message
    assert PASSWORD not in message
    assert credential_spy == []
    if sftp_backend.embedded is not None:
        assert sftp_backend.embedded.auth_attempts == []


def test_a_missing_known_hosts_file_is_an_unknown_host(
    sftp_backend: Backend, tmp_path: Path, credential_spy: list[str]
) -> None:
    settings = _settings(
        sftp_backend.settings.drop_url,
        sftp_password=PASSWORD,
        sftp_key_file=sftp_backend.settings.sftp_key_file,
        sftp_known_hosts=tmp_path / "nope",
    )
    with pytest.raises(HostKeyError, match="does not exist"):
        open_drop(settings, timeout=5)
    assert credential_spy == []


def test_a_changed_host_key_is_refused_before_any_credential(
    sftp_backend: Backend, tmp_path: Path, credential_spy: list[str]
) -> None:
    host = sftp_backend.settings.sftp
    assert host is not None
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{host.port} {' '.join(impostor.split()[:2])}\n")
    settings = _settings(
        sftp_backend.settings.drop_url,
        sftp_password=PASSWORD,
        sftp_key_file=sftp_backend.settings.sftp_key_file,
        sftp_known_hosts=changed,
    )

    with pytest.raises(HostKeyError, match="does not match") as caught:
        open_drop(settings, timeout=5)

    assert str(changed) in str(caught.value)
    assert credential_spy == []
    if sftp_backend.embedded is not None:
        assert sftp_backend.embedded.auth_attempts == []


def test_a_key_for_the_host_on_another_port_does_not_count(
    sftp_backend: Backend, tmp_path: Path
) -> None:
    line = Path(sftp_backend.settings.sftp_known_hosts).read_text().split(" ", 1)[1]
    other_port = tmp_path / "other_port"
    other_port.write_text(f"127.0.0.1 {line}")
    settings = _settings(
        sftp_backend.settings.drop_url,
        sftp_password=PASSWORD,
        sftp_key_file=sftp_backend.settings.sftp_key_file,
        sftp_known_hosts=other_port,
    )
    with pytest.raises(HostKeyError, match="is not in the known-hosts file"):
        open_drop(settings, timeout=5)


def test_password_login(embedded: EmbeddedSftpServer) -> None:
    with _embedded_backend(embedded).open() as drop:
        drop.write_atomic("p.csv", b"by password")
    methods = [attempt.method for attempt in embedded.auth_attempts]
    assert methods == ["begin", "password"]


def test_a_wrong_password_is_refused_without_echoing_it(embedded: EmbeddedSftpServer) -> None:
    settings = _settings(
        embedded.url, sftp_password="wrong-secret", sftp_known_hosts=embedded.known_hosts_path
    )
    with pytest.raises(DropError, match="refused the password login") as caught:
        open_drop(settings, timeout=5)
    assert "wrong-secret" not in str(caught.value)


def test_key_login_on_the_embedded_server(tmp_path: Path) -> None:
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(tmp_path / "id_ed25519")
    with EmbeddedSftpServer(
        tmp_path / "drop", username="erp", authorized_key=client_key.export_public_key()
    ) as server:
        settings = _settings(
            server.url,
            sftp_key_file=tmp_path / "id_ed25519",
            sftp_known_hosts=server.known_hosts_path,
        )
        with open_drop(settings, timeout=5) as drop:
            drop.write_atomic("k.csv", b"by key")
        assert "publickey" in [attempt.method for attempt in server.auth_attempts]
    assert (tmp_path / "drop" / "k.csv").read_bytes() == b"by key"


@pytest.mark.openssh
def test_key_login_on_openssh(openssh_server: OpenSshServer, tmp_path: Path) -> None:
    backend = _openssh_backend(openssh_server)
    with backend.open() as drop:
        assert isinstance(drop, SftpDrop)
        drop.write_atomic("k.csv", b"by key")
    assert (backend.root / "k.csv").read_bytes() == b"by key"


def test_no_credentials_is_a_clear_error(embedded: EmbeddedSftpServer) -> None:
    settings = _settings(embedded.url, sftp_known_hosts=embedded.known_hosts_path)
    with pytest.raises(DropError, match="DROPSHIP_SFTP_PASSWORD"):
        open_drop(settings)
    assert embedded.auth_attempts == []


def _upload_cut_off(backend: Backend, cut: Callable[[SftpDrop], None]) -> None:
    """Upload PAYLOAD while ``cut`` breaks the connection; expect a DropError."""
    with backend.open() as drop:
        assert isinstance(drop, SftpDrop)
        drop.make_folder("orders")
        cut(drop)
        with pytest.raises(DropError, match="connection"):
            drop.write_atomic("orders/big.csv", PAYLOAD)


def _close_when_half_written(backend: Backend) -> Callable[[SftpDrop], None]:
    def cut(drop: SftpDrop) -> None:
        def watch() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                parts = list((backend.root / "orders").glob(".big.csv.*.part"))
                if parts and parts[0].stat().st_size > len(PAYLOAD) // 4:
                    transport = drop._transport
                    if transport is not None:
                        transport.close()
                    return
                time.sleep(0.002)

        threading.Thread(target=watch, daemon=True).start()

    return cut


def _assert_retry_delivers_once(backend: Backend) -> None:
    assert not (backend.root / "orders" / "big.csv").exists()
    with backend.open() as drop:
        drop.write_atomic("orders/big.csv", PAYLOAD)
    assert _files(backend.root) == ["orders/big.csv"]
    assert (backend.root / "orders" / "big.csv").read_bytes() == PAYLOAD


def test_a_connection_cut_by_the_server_mid_upload_leaves_no_final_file(
    embedded: EmbeddedSftpServer,
) -> None:
    backend = _embedded_backend(embedded)
    embedded.faults = SftpFaults(disconnect_after_bytes=len(PAYLOAD) // 3)

    _upload_cut_off(backend, lambda drop: None)

    # The cut connection cannot remove its temporary file: that one name, and nothing else.
    (left,) = [p.name for p in (backend.root / "orders").iterdir()]
    assert re.fullmatch(r"\.big\.csv\.[0-9a-f]{12}\.part", left), left
    embedded.faults = SftpFaults()
    _assert_retry_delivers_once(backend)


def test_a_connection_lost_mid_upload_leaves_no_final_file(sftp_backend: Backend) -> None:
    _upload_cut_off(sftp_backend, _close_when_half_written(sftp_backend))
    _assert_retry_delivers_once(sftp_backend)


def test_a_server_that_stops_answering_hits_the_deadline(embedded: EmbeddedSftpServer) -> None:
    backend = _embedded_backend(embedded)
    with backend.open(timeout=1.0) as drop:
        embedded.faults = SftpFaults(stall_writes=True)
        started = time.monotonic()
        with pytest.raises(DropError, match="no answer within"):
            drop.write_atomic("stalled.csv", PAYLOAD)
        elapsed = time.monotonic() - started
        with pytest.raises(DropError, match="open a new drop"):
            drop.list()

    assert elapsed < 1.0 + len(PAYLOAD) / (64 * 1024) + 2
    assert elapsed < 5, "the stall should be noticed by the per-request timeout"
    assert not (backend.root / "stalled.csv").exists()


@pytest.mark.openssh
def test_a_frozen_openssh_server_hits_the_deadline(
    openssh_server: OpenSshServer, tmp_path: Path
) -> None:
    backend = _openssh_backend(openssh_server)
    with backend.open(timeout=1.0) as drop:
        drop.write_atomic("before.csv", b"fine")
        with sessions_paused(openssh_server) as pids:
            assert pids, "the session's processes should be found"
            started = time.monotonic()
            with pytest.raises(DropError, match="no answer within"):
                drop.list()
            elapsed = time.monotonic() - started
    assert elapsed < 5


def test_a_server_without_plain_rename_falls_back_to_posix_rename(
    embedded: EmbeddedSftpServer,
) -> None:
    embedded.faults = SftpFaults(refuse_rename=True)
    with _embedded_backend(embedded).open() as drop:
        drop.write_atomic("r.csv", b"renamed")
        drop.write_atomic("r.csv", b"renamed")
        with pytest.raises(DropTargetExistsError):
            drop.write_atomic("r.csv", b"different")
    assert _files(embedded.root) == ["r.csv"]


def test_a_server_refusing_both_renames_fails_and_cleans_up(
    embedded: EmbeddedSftpServer,
) -> None:
    embedded.faults = SftpFaults(refuse_rename=True, refuse_posix_rename=True)
    with _embedded_backend(embedded).open() as drop:
        for _ in range(2):  # the second time posix-rename is no longer tried
            with pytest.raises(DropError, match="rename"):
                drop.write_atomic("r.csv", b"renamed")
    assert _files(embedded.root) == []
