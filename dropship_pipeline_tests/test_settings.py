"""Settings from the environment: the contract's names and defaults, one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dropship_pipeline.errors import SettingsError
from dropship_pipeline.settings import DEFAULT_API_URL, DEFAULT_AUTH_URL, Settings

TOKEN_ONLY = {"DROPSHIP_SUPPLIER_ID": "14107", "DROPSHIP_ACCESS_TOKEN": "fixed-token"}


def settings(**variables: str) -> Settings:
    return Settings.from_env({**TOKEN_ONLY, **variables})


def test_the_defaults_are_the_contracts() -> None:
    loaded = Settings.from_env(TOKEN_ONLY)

    assert loaded.supplier_id == 14107
    assert loaded.api_url == DEFAULT_API_URL == "https://dropshiprc.iqmetrix.net/v1"
    assert loaded.auth_url == DEFAULT_AUTH_URL == "https://accountsrc.iqmetrix.net/v1"
    assert loaded.db_path == Path("data/dropship.duckdb")
    assert loaded.snapshot_path == Path("data/dropship_snapshot.duckdb")
    assert loaded.drop_url == "data/drop"
    assert loaded.sftp_known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert (loaded.orders_dir, loaded.confirmations_dir) == ("orders", "confirmations")
    assert loaded.export_formats == ("csv",)
    assert loaded.export_since is None and loaded.order_layout is None


def test_every_variable_is_read() -> None:
    loaded = settings(
        DROPSHIP_API_URL="https://dropship.iqmetrix.net/v1/",
        DROPSHIP_AUTH_URL="https://accounts.iqmetrix.net/v1",
        DROPSHIP_DB="/srv/ds/pipeline.duckdb",
        DROPSHIP_SNAPSHOT="/srv/ds/analysts.duckdb",
        DROPSHIP_DROP_URL="/srv/erp",
        DROPSHIP_ORDERS_DIR="in/orders/",
        DROPSHIP_CONFIRMATIONS_DIR="out",
        DROPSHIP_EXPORT_FORMATS="XLSX, csv,xlsx",
        DROPSHIP_EXPORT_SINCE="2026-11-01",
    )

    assert loaded.api_url == "https://dropship.iqmetrix.net/v1"
    assert loaded.auth_url == "https://accounts.iqmetrix.net/v1"
    assert loaded.db_path == Path("/srv/ds/pipeline.duckdb")
    assert loaded.snapshot_path == Path("/srv/ds/analysts.duckdb")
    assert loaded.drop_url == "/srv/erp"
    assert (loaded.orders_dir, loaded.confirmations_dir) == ("in/orders", "out")
    assert loaded.export_formats == ("xlsx", "csv")
    assert loaded.export_since == datetime(2026, 11, 1, tzinfo=UTC)


def test_the_password_grant_needs_all_four_credentials() -> None:
    grant = {
        "DROPSHIP_SUPPLIER_ID": "14107",
        "DROPSHIP_CLIENT_ID": "client",
        "DROPSHIP_CLIENT_SECRET": "secret",
        "DROPSHIP_USERNAME": "user@example.com",
        "DROPSHIP_PASSWORD": " spaced password ",
    }
    loaded = Settings.from_env(grant)
    assert loaded.uses_password_grant
    assert loaded.password == " spaced password "  # secrets are taken as written

    without_password = {**grant, "DROPSHIP_PASSWORD": "  "}
    with pytest.raises(SettingsError, match=r"^DROPSHIP_PASSWORD is not set"):
        Settings.from_env(without_password)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DROPSHIP_SUPPLIER_ID": ""}, "DROPSHIP_SUPPLIER_ID"),
        ({"DROPSHIP_SUPPLIER_ID": "14107a"}, "DROPSHIP_SUPPLIER_ID"),
        ({"DROPSHIP_SUPPLIER_ID": "²"}, "DROPSHIP_SUPPLIER_ID"),
        ({"DROPSHIP_SUPPLIER_ID": "٣"}, "DROPSHIP_SUPPLIER_ID"),
        ({"DROPSHIP_SUPPLIER_ID": "0"}, "DROPSHIP_SUPPLIER_ID"),
        ({"DROPSHIP_API_URL": "http://dropship.iqmetrix.net/v1"}, "DROPSHIP_API_URL"),
        ({"DROPSHIP_API_URL": "https://user:pw@dropship.iqmetrix.net/v1"}, "DROPSHIP_API_URL"),
        ({"DROPSHIP_API_URL": "https://dropship.iqmetrix.net/v1?key=1"}, "DROPSHIP_API_URL"),
        ({"DROPSHIP_AUTH_URL": "ftp://accounts.iqmetrix.net/v1"}, "DROPSHIP_AUTH_URL"),
        ({"DROPSHIP_DROP_URL": "ftp://erp.example.com/drop"}, "DROPSHIP_DROP_URL"),
        ({"DROPSHIP_DROP_URL": "sftp://erp.example.com/drop"}, "DROPSHIP_DROP_URL"),
        ({"DROPSHIP_DROP_URL": "sftp://u:pw@erp.example.com/drop"}, "DROPSHIP_DROP_URL"),
        ({"DROPSHIP_DROP_URL": "sftp://u@erp.example.com:port/drop"}, "DROPSHIP_DROP_URL"),
        ({"DROPSHIP_ORDERS_DIR": "../elsewhere"}, "DROPSHIP_ORDERS_DIR"),
        ({"DROPSHIP_CONFIRMATIONS_DIR": "/"}, "DROPSHIP_CONFIRMATIONS_DIR"),
        ({"DROPSHIP_EXPORT_FORMATS": "csv,pdf"}, "DROPSHIP_EXPORT_FORMATS"),
        ({"DROPSHIP_EXPORT_SINCE": "last tuesday"}, "DROPSHIP_EXPORT_SINCE"),
        ({"DROPSHIP_SNAPSHOT": "data/dropship.duckdb"}, "DROPSHIP_SNAPSHOT"),
        ({"DROPSHIP_ACCESS_TOKEN": ""}, "DROPSHIP_CLIENT_ID"),
    ],
)
def test_a_bad_variable_stops_start_up_with_one_line_naming_it(variables, named) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(**variables)

    message = str(caught.value)
    assert named in message
    assert "\n" not in message
    assert "pw" not in message.replace("password", "")


def test_an_sftp_drop_needs_its_known_hosts_file_and_a_way_to_log_in(tmp_path) -> None:
    known_hosts = tmp_path / "known_hosts"
    sftp = {"DROPSHIP_DROP_URL": "sftp://erp@127.0.0.1:2222/drop"}

    with pytest.raises(SettingsError, match="DROPSHIP_SFTP_KNOWN_HOSTS"):
        settings(**sftp, DROPSHIP_SFTP_KNOWN_HOSTS=str(known_hosts), DROPSHIP_SFTP_PASSWORD="pw")

    known_hosts.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n")
    with pytest.raises(SettingsError, match="DROPSHIP_SFTP_PASSWORD and DROPSHIP_SFTP_KEY_FILE"):
        settings(**sftp, DROPSHIP_SFTP_KNOWN_HOSTS=str(known_hosts))
    with pytest.raises(SettingsError, match="DROPSHIP_SFTP_KEY_FILE"):
        settings(
            **sftp,
            DROPSHIP_SFTP_KNOWN_HOSTS=str(known_hosts),
            DROPSHIP_SFTP_KEY_FILE=str(tmp_path / "missing_key"),
        )

    loaded = settings(
        **sftp, DROPSHIP_SFTP_KNOWN_HOSTS=str(known_hosts), DROPSHIP_SFTP_PASSWORD="pw"
    )
    assert loaded.sftp is not None
    assert (loaded.sftp.user, loaded.sftp.host, loaded.sftp.port) == ("erp", "127.0.0.1", 2222)
    assert loaded.sftp_password == "pw"
    assert "pw" not in repr(loaded)


def test_secrets_stay_out_of_repr() -> None:
    loaded = Settings.from_env(
        {
            "DROPSHIP_SUPPLIER_ID": "14107",
            "DROPSHIP_CLIENT_ID": "client",
            "DROPSHIP_CLIENT_SECRET": "the-client-secret",
            "DROPSHIP_USERNAME": "user@example.com",
            "DROPSHIP_PASSWORD": "the-password",
            "DROPSHIP_ACCESS_TOKEN": "the-token",
        }
    )

    for secret in ("the-client-secret", "the-password", "the-token"):
        assert secret not in repr(loaded)
