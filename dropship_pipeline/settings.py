"""Settings, read from the environment (and a ``.env`` file) and validated at start-up.

The variable names are fixed by CONTRACT.md section 1. A missing or malformed variable raises
:class:`SettingsError` with a one-line message that names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dropship_pipeline.erp.layout import ColumnLayout
from dropship_pipeline.errors import SettingsError

DEFAULT_API_URL = "https://dropshiprc.iqmetrix.net/v1"
DEFAULT_AUTH_URL = "https://accountsrc.iqmetrix.net/v1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
EXPORT_FORMATS = ("csv", "xlsx")
# str.isdigit() would also take "²" and digits of other scripts.
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_SECRET_VARIABLES = frozenset({"DROPSHIP_CLIENT_SECRET", "DROPSHIP_PASSWORD"})


@dataclass(frozen=True)
class SftpTarget:
    """Where ``DROPSHIP_DROP_URL`` points when it is an ``sftp://`` URL."""

    user: str
    host: str
    port: int
    base_path: str


@dataclass(frozen=True)
class Settings:
    """Every setting of CONTRACT.md section 1, typed. Secrets are kept out of ``repr``."""

    supplier_id: int
    api_url: str = DEFAULT_API_URL
    auth_url: str = DEFAULT_AUTH_URL
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    db_path: Path = Path("data/dropship.duckdb")
    snapshot_path: Path = Path("data/dropship_snapshot.duckdb")
    drop_url: str = "data/drop"
    sftp_password: str | None = field(default=None, repr=False)
    sftp_key_file: Path | None = None
    sftp_known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    orders_dir: str = "orders"
    confirmations_dir: str = "confirmations"
    export_formats: tuple[str, ...] = ("csv",)
    export_since: datetime | None = None
    order_layout: ColumnLayout | None = None
    """The column layout file of ``DROPSHIP_ORDER_LAYOUT``, loaded; None for the contract's."""

    @property
    def sftp(self) -> SftpTarget | None:
        """The SFTP target when the drop is ``sftp://``; None for a local folder."""
        return parse_sftp_url(self.drop_url)

    @property
    def feed_spool_dir(self) -> Path:
        """Archive pages fetched but not yet stored live beside the database."""
        return self.db_path.with_name(self.db_path.name + ".spool")

    @property
    def uses_password_grant(self) -> bool:
        return self.access_token is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raise SettingsError naming the first bad variable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        def secret(name: str) -> str | None:
            # Taken as written: a password may begin or end with a space. Blank means unset.
            value = env.get(name)
            return value if value and value.strip() else None

        supplier_raw = get("DROPSHIP_SUPPLIER_ID")
        if supplier_raw is None:
            raise SettingsError("DROPSHIP_SUPPLIER_ID is not set: give the supplier's numeric id.")
        if _WHOLE_NUMBER.fullmatch(supplier_raw) is None or int(supplier_raw) == 0:
            raise SettingsError(
                f"DROPSHIP_SUPPLIER_ID must be a positive whole number, got {supplier_raw!r}."
            )

        api_url = _base_url("DROPSHIP_API_URL", get("DROPSHIP_API_URL") or DEFAULT_API_URL)
        auth_url = _base_url("DROPSHIP_AUTH_URL", get("DROPSHIP_AUTH_URL") or DEFAULT_AUTH_URL)

        access_token = secret("DROPSHIP_ACCESS_TOKEN")
        grant = {
            name: secret(name) if name in _SECRET_VARIABLES else get(name)
            for name in (
                "DROPSHIP_CLIENT_ID",
                "DROPSHIP_CLIENT_SECRET",
                "DROPSHIP_USERNAME",
                "DROPSHIP_PASSWORD",
            )
        }
        if access_token is None:
            missing = [name for name, value in grant.items() if value is None]
            if missing:
                raise SettingsError(
                    f"{missing[0]} is not set: the password grant needs DROPSHIP_CLIENT_ID, "
                    "DROPSHIP_CLIENT_SECRET, DROPSHIP_USERNAME and DROPSHIP_PASSWORD "
                    "(or set DROPSHIP_ACCESS_TOKEN)."
                )

        drop_url = get("DROPSHIP_DROP_URL") or "data/drop"
        if drop_url.startswith("sftp:"):
            parse_sftp_url(drop_url)  # raises SettingsError when malformed
        elif "://" in drop_url:
            raise SettingsError(
                f"DROPSHIP_DROP_URL must be a local folder or sftp://user@host[:port]/path, "
                f"got a {drop_url.split('://', 1)[0]}:// URL."
            )

        formats = tuple(
            part.strip().lower()
            for part in (get("DROPSHIP_EXPORT_FORMATS") or "csv").split(",")
            if part.strip()
        )
        unknown = [part for part in formats if part not in EXPORT_FORMATS]
        if not formats or unknown:
            raise SettingsError(
                f"DROPSHIP_EXPORT_FORMATS must be a comma list of csv and xlsx, "
                f"got {get('DROPSHIP_EXPORT_FORMATS')!r}."
            )

        key_file = get("DROPSHIP_SFTP_KEY_FILE")
        known_hosts = Path(get("DROPSHIP_SFTP_KNOWN_HOSTS") or "~/.ssh/known_hosts").expanduser()
        sftp_password = secret("DROPSHIP_SFTP_PASSWORD")
        if drop_url.startswith("sftp:"):
            _check_sftp_files(key_file, known_hosts, sftp_password)

        db_path = Path(get("DROPSHIP_DB") or "data/dropship.duckdb")
        snapshot_path = Path(get("DROPSHIP_SNAPSHOT") or "data/dropship_snapshot.duckdb")
        if db_path.expanduser().resolve() == snapshot_path.expanduser().resolve():
            raise SettingsError(
                "DROPSHIP_SNAPSHOT names the same file as DROPSHIP_DB: the analysts' copy must "
                "be a file of its own."
            )

        layout_file = get("DROPSHIP_ORDER_LAYOUT")
        # Loaded now so that an unknown column stops the start, not the first export.
        order_layout = ColumnLayout.load(Path(layout_file).expanduser()) if layout_file else None
        return cls(
            supplier_id=int(supplier_raw),
            api_url=api_url,
            auth_url=auth_url,
            client_id=grant["DROPSHIP_CLIENT_ID"],
            client_secret=grant["DROPSHIP_CLIENT_SECRET"],
            username=grant["DROPSHIP_USERNAME"],
            password=grant["DROPSHIP_PASSWORD"],
            access_token=access_token,
            db_path=db_path,
            snapshot_path=snapshot_path,
            drop_url=drop_url,
            sftp_password=sftp_password,
            sftp_key_file=Path(key_file).expanduser() if key_file else None,
            sftp_known_hosts=known_hosts,
            orders_dir=_folder("DROPSHIP_ORDERS_DIR", get("DROPSHIP_ORDERS_DIR") or "orders"),
            confirmations_dir=_folder(
                "DROPSHIP_CONFIRMATIONS_DIR", get("DROPSHIP_CONFIRMATIONS_DIR") or "confirmations"
            ),
            export_formats=tuple(dict.fromkeys(formats)),
            export_since=_since(get("DROPSHIP_EXPORT_SINCE")),
            order_layout=order_layout,
        )


def _check_sftp_files(key_file: str | None, known_hosts: Path, password: str | None) -> None:
    if not known_hosts.is_file():
        raise SettingsError(
            f"DROPSHIP_SFTP_KNOWN_HOSTS names {known_hosts}, which is not a file: the SFTP "
            "server's host key must be listed there (for example with ssh-keyscan, checked "
            "with its operator)."
        )
    if key_file is not None and not Path(key_file).expanduser().is_file():
        raise SettingsError(f"DROPSHIP_SFTP_KEY_FILE names {key_file}, which is not a file.")
    if key_file is None and password is None:
        raise SettingsError(
            "DROPSHIP_SFTP_PASSWORD and DROPSHIP_SFTP_KEY_FILE are both unset: the SFTP drop "
            "needs one of them to log in."
        )


def _base_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        # Credentials in a URL end up in logs and error messages; the API takes none there.
        raise SettingsError(
            f"{name} must be a plain base URL such as https://host/v1, without a user name, "
            "password, query or fragment."
        )
    if parts.scheme == "https" and parts.hostname:
        return value.rstrip("/")
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return value.rstrip("/")
    raise SettingsError(
        f"{name} must be an https:// URL (plain http:// only for 127.0.0.1, ::1 or localhost), "
        f"got {value!r}."
    )


def parse_sftp_url(value: str) -> SftpTarget | None:
    """Split ``sftp://user@host[:port]/base/path``; None when ``value`` is not an sftp URL."""
    if not value.startswith("sftp:"):
        return None
    parts = urlsplit(value)
    try:
        port = parts.port or 22
    except ValueError:
        raise SettingsError(f"DROPSHIP_DROP_URL has a malformed port: {value!r}.") from None
    if parts.scheme != "sftp" or not parts.hostname or not parts.username:
        raise SettingsError(
            f"DROPSHIP_DROP_URL must look like sftp://user@host[:port]/base/path, got {value!r}."
        )
    if parts.password:
        raise SettingsError(
            "DROPSHIP_DROP_URL must not carry a password: set DROPSHIP_SFTP_PASSWORD instead."
        )
    return SftpTarget(
        user=unquote(parts.username),
        host=parts.hostname,
        port=port,
        base_path=unquote(parts.path) or ".",
    )


def _folder(name: str, value: str) -> str:
    cleaned = value.strip("/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise SettingsError(f"{name} must be a relative folder name without '..', got {value!r}.")
    return cleaned


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise SettingsError(
                f"DROPSHIP_EXPORT_SINCE must be an ISO date such as 2026-01-31, got {value!r}."
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
