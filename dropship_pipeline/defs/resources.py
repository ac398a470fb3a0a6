"""The one resource every asset uses: the validated settings, and what they open.

Each field mirrors a variable of CONTRACT.md section 1. ``definitions.py`` fills secret fields
with ``dg.EnvVar`` so that the UI and run config only ever show the variable's name.
"""

from __future__ import annotations

import dagster as dg

from dropship_pipeline.dropship.client import DropshipClient
from dropship_pipeline.settings import Settings
from dropship_pipeline.store.db import connect

#: Field name -> environment variable, for every setting of the contract.
SETTING_VARIABLES: dict[str, str] = {
    "supplier_id": "DROPSHIP_SUPPLIER_ID",
    "api_url": "DROPSHIP_API_URL",
    "auth_url": "DROPSHIP_AUTH_URL",
    "client_id": "DROPSHIP_CLIENT_ID",
    "client_secret": "DROPSHIP_CLIENT_SECRET",
    "username": "DROPSHIP_USERNAME",
    "password": "DROPSHIP_PASSWORD",
    "access_token": "DROPSHIP_ACCESS_TOKEN",
    "db": "DROPSHIP_DB",
    "snapshot": "DROPSHIP_SNAPSHOT",
    "drop_url": "DROPSHIP_DROP_URL",
    "sftp_password": "DROPSHIP_SFTP_PASSWORD",
    "sftp_key_file": "DROPSHIP_SFTP_KEY_FILE",
    "sftp_known_hosts": "DROPSHIP_SFTP_KNOWN_HOSTS",
    "orders_dir": "DROPSHIP_ORDERS_DIR",
    "confirmations_dir": "DROPSHIP_CONFIRMATIONS_DIR",
    "export_formats": "DROPSHIP_EXPORT_FORMATS",
    "export_since": "DROPSHIP_EXPORT_SINCE",
    "order_layout": "DROPSHIP_ORDER_LAYOUT",
}
SECRET_FIELDS = frozenset({"client_secret", "password", "access_token", "sftp_password"})


class PipelineResource(dg.ConfigurableResource):
    """The pipeline's settings. Unset fields fall back to the contract's defaults."""

    supplier_id: str | None = None
    api_url: str | None = None
    auth_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    access_token: str | None = None
    db: str | None = None
    snapshot: str | None = None
    drop_url: str | None = None
    sftp_password: str | None = None
    sftp_key_file: str | None = None
    sftp_known_hosts: str | None = None
    orders_dir: str | None = None
    confirmations_dir: str | None = None
    export_formats: str | None = None
    export_since: str | None = None
    order_layout: str | None = None

    def settings(self) -> Settings:
        """Validate and return the settings; SettingsError names the first bad variable."""
        values = {
            variable: getattr(self, name)
            for name, variable in SETTING_VARIABLES.items()
            if getattr(self, name) is not None
        }
        return Settings.from_env(values)

    def client(self, settings: Settings | None = None) -> DropshipClient:
        """A client for ``settings`` (already validated by the caller), else for our own."""
        return DropshipClient.from_settings(settings or self.settings())

    def count(self, sql: str, params: list[object] | None = None) -> int:
        """The single number a check's query returns, from a short-lived connection."""
        with connect(self.settings().db_path) as con:
            row = con.execute(sql, params or []).fetchone()
        return int(row[0]) if row else 0
