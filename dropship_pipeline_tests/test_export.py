"""The ERP export against real parts: a DuckDB file fed by the simulator's feed, a local folder,
the embedded SFTP server and a real OpenSSH server as drops, files read back with csv and
openpyxl, acknowledgements PUT to the simulator. The crash tests kill a child process at each step
and run again.

The OpenSSH cases (marker ``openssh``) use the session's sshd from ``conftest.py``: key login,
its known-hosts file, and a fresh drop folder of the login user's for each test. Where sshd is
missing they are skipped with the reason, or fail under ``CI=true``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import openpyxl
import pytest

from dropship_pipeline.dropship.client import DropshipClient, RetryPolicy
from dropship_pipeline.dropship.crawl import crawl_feed
from dropship_pipeline.dropship.models import OrderStatus, OrderStatusUpdate
from dropship_pipeline.erp import export as export_module
from dropship_pipeline.erp.drop import LocalDrop
from dropship_pipeline.erp.export import export_with_settings
from dropship_pipeline.erp.layout import ORDER_FILE_COLUMNS
from dropship_pipeline.errors import DropError, SettingsError
from dropship_pipeline.fulfilment.outbox import FEED_CONFIRMED, send_outbox
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator import SimulatorServer
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer, SftpFaults
from dropship_pipeline_tests.openssh import OpenSshServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "export-test-token"
SFTP_PASSWORD = "export drop password"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total=10)
ORDERS = 12
DROPS = ["local", "embedded", pytest.param("openssh", marks=pytest.mark.openssh)]
"""Every kind of drop the export's integration tests run against."""


@dataclass
class Setup:
    """A simulator, a DuckDB file crawled from it, and a drop: everything a cycle needs."""

    server: SimulatorServer
    env: dict[str, str]
    drop_root: Path
    sftp: EmbeddedSftpServer | None = None
    openssh: OpenSshServer | None = None

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def db(self) -> Path:
        return Path(self.env["DROPSHIP_DB"])

    @property
    def orders_dir(self) -> Path:
        return self.drop_root / "orders"

    def crawl(self) -> None:
        with DropshipClient.from_settings(self.settings, retry=FAST_RETRY) as client:
            crawl_feed(client, self.db, spool_dir=self.db.with_suffix(".spool"))


def run_cycle(environ: Mapping[str, str]) -> None:
    """Export and send the outbox as the settings say; what the crash tests' child runs."""
    settings = Settings.from_env(environ)
    export_with_settings(settings)
    with DropshipClient.from_settings(settings, retry=FAST_RETRY) as client:
        send_outbox(settings.db_path, client)


def run_interrupted(setup: Setup, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Run a cycle whose export raises when it reaches ``step`` (a function of the module)."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"interrupted at {step}")

    with monkeypatch.context() as patch:
        patch.setattr(export_module, step, interrupted)
        with pytest.raises(RuntimeError, match=f"interrupted at {step}"):
            run_cycle(setup.env)


def use_layout(setup: Setup, path: Path, text: str) -> None:
    """Write a column layout file and point the settings at it."""
    path.write_text(text)
    setup.env["DROPSHIP_ORDER_LAYOUT"] = str(path)


@pytest.fixture
def embedded_sftp(tmp_path: Path) -> Iterator[EmbeddedSftpServer]:
    with EmbeddedSftpServer(tmp_path / "sftp", username="erp", password=SFTP_PASSWORD) as server:
        yield server


@pytest.fixture
def make_setup(
    make_simulator, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Setup]:
    def make(drop: str = "local", *, orders: int = ORDERS, formats: str = "csv,xlsx") -> Setup:
        # Strict: an update outside the documented lifecycle is flagged, and checked below.
        server = make_simulator(access_token=TOKEN, initial_orders=orders, strict=True)
        env = {
            "DROPSHIP_API_URL": server.base_url,
            "DROPSHIP_AUTH_URL": server.base_url,
            "DROPSHIP_SUPPLIER_ID": str(server.state.supplier_ids[0]),
            "DROPSHIP_ACCESS_TOKEN": TOKEN,
            "DROPSHIP_DB": str(tmp_path / "pipeline.duckdb"),
            "DROPSHIP_EXPORT_FORMATS": formats,
        }
        sftp = openssh = None
        if drop == "local":
            drop_root = tmp_path / "drop"
            env["DROPSHIP_DROP_URL"] = str(drop_root)
        elif drop == "embedded":
            sftp = request.getfixturevalue("embedded_sftp")
            drop_root = sftp.root
            env["DROPSHIP_DROP_URL"] = sftp.url
            env["DROPSHIP_SFTP_PASSWORD"] = SFTP_PASSWORD
            env["DROPSHIP_SFTP_KNOWN_HOSTS"] = str(sftp.known_hosts_path)
        elif drop == "openssh":
            openssh = request.getfixturevalue("openssh_server")
            # The URL's base folder, the login user's; the export makes the orders folder in it.
            drop_root = openssh.new_folder()
            env["DROPSHIP_DROP_URL"] = openssh.url(drop_root)
            env["DROPSHIP_SFTP_KEY_FILE"] = str(openssh.client_key)
            env["DROPSHIP_SFTP_KNOWN_HOSTS"] = str(openssh.known_hosts)
        else:
            raise ValueError(f"unknown drop {drop!r}")
        setup = Setup(server, env, drop_root, sftp, openssh)
        setup.crawl()
        return setup

    return make


# ---- reading back ------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert b"\r\n" in data
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def read_xlsx(path: Path) -> list[dict[str, object]]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    try:
        sheet = workbook["Orders"]
        rows = list(sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    header = [str(cell) for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def order_ids_in(path: Path) -> list[str]:
    rows = read_csv(path) if path.suffix == ".csv" else read_xlsx(path)
    return [str(row["order_id"]) for row in rows]


def db_rows(db: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def accepted_acks(server: SimulatorServer) -> Counter[str]:
    return Counter(
        record.order_id
        for record in server.state.updates()
        if record.http_status == 202
        and record.kind == "order"
        and isinstance(record.body, dict)
        and record.body.get("Status") == int(OrderStatus.Ordered)
    )


def assert_delivered_exactly_once(setup: Setup, formats: tuple[str, ...] = ("csv", "xlsx")) -> None:
    """One file per format per batch, each order in one batch, each ack accepted once, and
    nothing the strict simulator found outside the lifecycle."""
    flagged = [
        (u.order_id, u.problems) for u in setup.server.state.updates() if u.verdict != "accepted"
    ]
    assert not flagged
    names = sorted(path.name for path in setup.orders_dir.iterdir())
    assert not [name for name in names if name.startswith(".")], names  # no stray temp file

    exports = db_rows(setup.db, "SELECT export_id, format, file_name, state FROM erp_exports")
    assert sorted(name for _, _, name, _ in exports) == names
    assert {state for *_, state in exports} == {"delivered"}
    by_batch: dict[str, list[str]] = {}
    for export_id, fmt, _, _ in exports:
        by_batch.setdefault(export_id, []).append(fmt)
    assert all(sorted(fmts) == sorted(formats) for fmts in by_batch.values())

    all_orders = {row[0] for row in db_rows(setup.db, "SELECT order_id FROM orders")}
    for fmt in formats:
        seen = Counter()
        for path in setup.orders_dir.glob(f"*.{fmt}"):
            seen.update(set(order_ids_in(path)))
        assert set(seen) == all_orders
        assert max(seen.values()) == 1
    claimed = db_rows(setup.db, "SELECT order_id, count(*) FROM erp_export_orders GROUP BY 1")
    assert {order_id for order_id, _ in claimed} == all_orders
    assert {count for _, count in claimed} == {1}

    acks = accepted_acks(setup.server)
    assert set(acks) == all_orders
    assert set(acks.values()) == {1}
    assert db_rows(setup.db, "SELECT DISTINCT state FROM status_updates") == [("sent",)]
    unacknowledged = db_rows(setup.db, "SELECT count(*) FROM orders WHERE acknowledged_at IS NULL")
    assert unacknowledged == [(0,)]


# ---- the export, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("drop", DROPS)
def test_new_orders_reach_the_drop_once_as_csv_and_xlsx_and_are_acknowledged(make_setup, drop):
    setup = make_setup(drop)

    run_cycle(setup.env)

    assert_delivered_exactly_once(setup)
    (csv_path,) = setup.orders_dir.glob("*.csv")
    (xlsx_path,) = setup.orders_dir.glob("*.xlsx")
    assert csv_path.stem == xlsx_path.stem
    assert csv_path.name.startswith("orders_") and csv_path.stem.endswith("_000001")
    csv_rows, xlsx_rows = read_csv(csv_path), read_xlsx(xlsx_path)
    assert list(csv_rows[0]) == list(ORDER_FILE_COLUMNS)
    assert list(xlsx_rows[0]) == list(ORDER_FILE_COLUMNS)
    expected = db_rows(
        setup.db,
        "SELECT o.order_id, i.line_number, i.sku, i.quantity FROM orders o "
        "JOIN order_items i USING (order_id) ORDER BY o.created_at, o.order_id, i.line_number",
    )
    got_csv = [
        (r["order_id"], int(r["line_number"]), r["sku"], int(r["quantity"])) for r in csv_rows
    ]
    got_xlsx = [(r["order_id"], r["line_number"], r["sku"], r["quantity"]) for r in xlsx_rows]
    assert got_csv == got_xlsx == expected
    recorded = db_rows(setup.db, "SELECT format, order_count, row_count FROM erp_exports")
    assert sorted(recorded) == [("csv", ORDERS, len(expected)), ("xlsx", ORDERS, len(expected))]

    puts = len(setup.server.state.updates())
    run_cycle(setup.env)  # nothing new: no file, no PUT

    assert len(list(setup.orders_dir.iterdir())) == 2
    assert len(setup.server.state.updates()) == puts


def test_a_later_run_exports_only_the_orders_that_arrived_since(make_setup):
    setup = make_setup(formats="csv")
    run_cycle(setup.env)

    setup.server.state.add_orders(5)
    setup.crawl()
    run_cycle(setup.env)

    assert_delivered_exactly_once(setup, ("csv",))
    batches = db_rows(setup.db, "SELECT export_id, order_count FROM erp_exports ORDER BY 1")
    assert batches == [("000001", ORDERS), ("000002", 5)]


def test_orders_past_ordered_in_the_feed_are_exported_but_not_acknowledged(make_setup):
    setup = make_setup(formats="csv")
    shipped, ordered = sorted(setup.server.state.order_ids())[:2]
    with DropshipClient.from_settings(setup.settings, retry=FAST_RETRY) as client:
        client.order_status_update(OrderStatusUpdate(shipped, OrderStatus.Shipped))
        client.order_status_update(OrderStatusUpdate(ordered, OrderStatus.Ordered))
    setup.crawl()
    puts_before = len(setup.server.state.updates())

    run_cycle(setup.env)

    (csv_path,) = setup.orders_dir.glob("*.csv")
    assert {shipped, ordered} <= set(order_ids_in(csv_path))
    new_puts = setup.server.state.updates()[puts_before:]
    assert {record.order_id for record in new_puts}.isdisjoint({shipped, ordered})
    assert len(new_puts) == ORDERS - 2
    queued = {row[0] for row in db_rows(setup.db, "SELECT order_id FROM status_updates")}
    assert queued.isdisjoint({shipped, ordered})


def test_orders_created_before_the_cut_off_are_stored_but_not_exported(make_setup):
    setup = make_setup(formats="csv")
    old = sorted(setup.server.state.order_ids())[:4]
    with duckdb.connect(str(setup.db)) as con:
        con.execute(
            "UPDATE orders SET created_at = TIMESTAMPTZ '2025-12-31 23:59:59+00' "
            "WHERE order_id IN (SELECT unnest(?))",
            [old],
        )
    setup.env["DROPSHIP_EXPORT_SINCE"] = "2026-01-01"

    run_cycle(setup.env)

    (csv_path,) = setup.orders_dir.glob("*.csv")
    exported = set(order_ids_in(csv_path))
    assert len(exported) == ORDERS - 4
    assert exported.isdisjoint(old)
    assert set(accepted_acks(setup.server)) == exported


def test_a_column_layout_file_renames_drops_and_reorders_columns(make_setup, tmp_path):
    setup = make_setup(formats="csv")
    layout = tmp_path / "layout.csv"
    layout.write_text("column,header\nsku,ItemCode\norder_id,OrderNumber\nquantity,\n")
    setup.env["DROPSHIP_ORDER_LAYOUT"] = str(layout)

    run_cycle(setup.env)

    (csv_path,) = setup.orders_dir.glob("*.csv")
    rows = read_csv(csv_path)
    assert list(rows[0]) == ["ItemCode", "OrderNumber", "quantity"]


def test_an_unknown_column_in_the_layout_file_stops_the_start(tmp_path):
    layout = tmp_path / "layout.csv"
    layout.write_text("column,header\norder_id,OrderNumber\nfavourite_colour,Colour\n")
    env = {"DROPSHIP_SUPPLIER_ID": "1", "DROPSHIP_ACCESS_TOKEN": "x"}

    with pytest.raises(SettingsError, match="line 3: unknown column 'favourite_colour'"):
        Settings.from_env({**env, "DROPSHIP_ORDER_LAYOUT": str(layout)})


def test_a_batch_uploaded_under_an_old_layout_is_finished_without_a_second_file(
    make_setup, tmp_path, monkeypatch
):
    setup = make_setup(formats="csv")

    run_interrupted(setup, monkeypatch, "_mark_delivered")
    (uploaded,) = setup.orders_dir.iterdir()
    before = uploaded.read_bytes()
    use_layout(setup, tmp_path / "layout.csv", "column,header\norder_id,OrderNumber\n")

    run_cycle(setup.env)

    assert [path.read_bytes() for path in setup.orders_dir.iterdir()] == [before]
    assert_delivered_exactly_once(setup, ("csv",))


@pytest.mark.slow  # the server waits out the cut connection's session on shutdown
def test_an_sftp_connection_cut_mid_upload_is_finished_by_the_next_run(make_setup):
    setup = make_setup("embedded", orders=40, formats="csv")
    assert setup.sftp is not None
    setup.sftp.faults = SftpFaults(disconnect_after_bytes=2000)

    with pytest.raises(DropError):
        run_cycle(setup.env)
    assert db_rows(setup.db, "SELECT DISTINCT state FROM erp_exports") == [("staged",)]
    assert not [p for p in setup.orders_dir.iterdir() if not p.name.startswith(".")]

    setup.sftp.faults = SftpFaults()
    run_cycle(setup.env)

    assert_delivered_exactly_once(setup, ("csv",))


# ---- crash tests ---------------------------------------------------------------------------

# The child runs one cycle with the function at the chosen point replaced by one that kills the
# process (SIGKILL: no cleanup, no finally blocks), exactly as a power cut would.
KILL_SCRIPT = """
import os, signal, sys
from dropship_pipeline.erp import drop, export
from dropship_pipeline.store import outbox
from dropship_pipeline_tests.test_export import run_cycle

def die():
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[1]
if point == "after_staging":
    stage = export._stage_batch
    def killer(*args, **kwargs):
        staged = stage(*args, **kwargs)
        die()
    export._stage_batch = killer
elif point == "mid_upload":
    for cls in (drop.LocalDrop, drop.SftpDrop):
        def half(self, path, data, _upload=cls._upload):
            _upload(self, path, data[: len(data) // 2])
            die()
        cls._upload = half
elif point == "after_upload":
    export._mark_delivered = lambda *args, **kwargs: die()
elif point == "after_mark":
    mark = export._mark_delivered
    def killer(*args, **kwargs):
        mark(*args, **kwargs)
        die()
    export._mark_delivered = killer
elif point == "between_put_and_record":
    outbox.record_sent = lambda *args, **kwargs: die()
run_cycle(os.environ)
"""


def run_killed(setup: Setup, point: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, point],
        env={**os.environ, **setup.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("drop", DROPS)
@pytest.mark.parametrize("point", ["after_staging", "mid_upload", "after_upload", "after_mark"])
def test_an_export_killed_at_any_step_delivers_once_when_run_again(make_setup, drop, point):
    setup = make_setup(drop)

    run_killed(setup, point)
    staged = db_rows(setup.db, "SELECT DISTINCT state FROM erp_exports")
    assert staged == ([("delivered",)] if point == "after_mark" else [("staged",)])
    assert not accepted_acks(setup.server)
    temps = [path for path in setup.orders_dir.glob(".*.part")] if point == "mid_upload" else []
    assert len(temps) == (1 if point == "mid_upload" else 0)  # half a file, under a dot-name
    run_cycle(setup.env)

    assert_delivered_exactly_once(setup)
    run_cycle(setup.env)  # and a further run changes nothing
    assert_delivered_exactly_once(setup)


@pytest.mark.slow
def test_a_kill_between_a_put_and_its_record_sends_no_acknowledgement_twice(make_setup):
    setup = make_setup(formats="csv")

    run_killed(setup, "between_put_and_record")
    (first,) = accepted_acks(setup.server)
    setup.crawl()  # every run ingests the feed before it sends
    run_cycle(setup.env)

    acks = accepted_acks(setup.server)
    assert set(acks.values()) == {1}  # the interrupted one too: the feed showed it arrived
    assert len(acks) == ORDERS
    ((state, http_status, response),) = db_rows(
        setup.db,
        "SELECT state, http_status, response FROM status_updates WHERE order_id = ?",
        [first],
    )
    assert (state, http_status, response) == ("sent", None, FEED_CONFIRMED)
    assert_delivered_exactly_once(setup, ("csv",))


@pytest.mark.slow
@pytest.mark.parametrize("drop", ["local", pytest.param("openssh", marks=pytest.mark.openssh)])
def test_a_batch_killed_after_staging_and_again_after_its_upload_is_delivered_once(
    make_setup, drop
):
    setup = make_setup(drop)

    run_killed(setup, "after_staging")
    staged = dict(db_rows(setup.db, "SELECT file_name, content FROM erp_export_content"))
    assert sorted(Path(name).suffix for name in staged) == [".csv", ".xlsx"]
    run_killed(setup, "after_upload")  # the files are in the drop, the batch is not marked
    delivered = {path.name: path.read_bytes() for path in setup.orders_dir.iterdir()}
    assert delivered == staged  # the very bytes staged, not a new rendering
    run_cycle(setup.env)

    assert_delivered_exactly_once(setup)
    assert {path.name: path.read_bytes() for path in setup.orders_dir.iterdir()} == staged
    assert db_rows(setup.db, "SELECT count(*) FROM erp_export_content") == [(0,)]
    run_cycle(setup.env)
    assert_delivered_exactly_once(setup)


def test_a_staged_batch_is_delivered_as_staged_even_if_the_layout_changed_since(
    make_setup, tmp_path, monkeypatch
):
    setup = make_setup(formats="csv,xlsx")

    run_interrupted(setup, monkeypatch, "_deliver")
    staged = dict(db_rows(setup.db, "SELECT file_name, content FROM erp_export_content"))
    use_layout(setup, tmp_path / "layout.csv", "column,header\norder_id,OrderNumber\n")

    run_cycle(setup.env)

    assert {path.name: path.read_bytes() for path in setup.orders_dir.iterdir()} == staged
    (csv_path,) = setup.orders_dir.glob("*.csv")
    assert list(read_csv(csv_path)[0]) == list(ORDER_FILE_COLUMNS)
    assert_delivered_exactly_once(setup)


def test_a_batch_staged_before_its_bytes_were_recorded_is_rendered_again_and_delivered(
    make_setup, monkeypatch
):
    setup = make_setup(formats="csv,xlsx")

    run_interrupted(setup, monkeypatch, "_deliver")
    with duckdb.connect(str(setup.db)) as con:  # as a batch staged by the release before
        con.execute("DELETE FROM erp_export_content")

    run_cycle(setup.env)

    assert_delivered_exactly_once(setup)
    # Rendered at the batch's staged time, the XLSX file comes out as the bytes staged.
    recorded = dict(db_rows(setup.db, "SELECT file_name, sha256 FROM erp_exports"))
    delivered = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in setup.orders_dir.iterdir()
    }
    assert delivered == recorded


class LockProbeDrop(LocalDrop):
    """A local drop that, at each upload, has another process try to open the database."""

    def __init__(self, base: Path, db: Path) -> None:
        super().__init__(base)
        self.db = db
        self.probes: list[str] = []

    def _upload(self, path: str, data: bytes) -> None:
        probe = subprocess.run(
            [sys.executable, "-c", PROBE_SCRIPT, str(self.db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.probes.append("open" if probe.returncode == 0 else probe.stderr)
        super()._upload(path, data)


PROBE_SCRIPT = "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).close()"


def test_the_database_is_not_held_open_while_the_files_travel(make_setup):
    setup = make_setup(formats="csv,xlsx")
    drop = LockProbeDrop(setup.drop_root, setup.db)

    export_with_settings(setup.settings, drop=drop)

    assert drop.probes == ["open", "open"]
    assert len(list(setup.orders_dir.iterdir())) == 2


# ---- through Dagster -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_job_exports_and_acknowledges_with_counts_and_a_preview_without_personal_data(
    make_setup, monkeypatch
):
    import dagster as dg

    from dropship_pipeline.defs.definitions import PIPELINE_JOB, build_definitions

    setup = make_setup(formats="csv")
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    setup.server.state.add_orders(3)  # three more for the job's own crawl
    job = build_definitions().resolve_job_def(PIPELINE_JOB)

    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        files = instance.get_latest_materialization_event(dg.AssetKey("erp_order_files"))
        acks = instance.get_latest_materialization_event(dg.AssetKey("order_acknowledgements"))
    checks = {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }

    file_metadata = files.asset_materialization.metadata
    ack_metadata = acks.asset_materialization.metadata
    (csv_path,) = setup.orders_dir.glob("*.csv")
    assert file_metadata["file_names"].value == csv_path.name
    assert file_metadata["orders"].value == ORDERS + 3
    assert file_metadata["rows"].value == len(read_csv(csv_path))
    assert ack_metadata["sent"].value == ack_metadata["acknowledged"].value == ORDERS + 3
    assert ack_metadata["outbox_failed"].value == 0
    assert checks == {
        "orders_are_unique": True,
        "orders_have_lines": True,
        "orders_in_one_export": True,
        "exported_orders_acknowledged": True,
        "no_failed_updates": True,
        "update_ids_are_unique": True,
    }
    preview = file_metadata["preview"].value
    assert preview.splitlines()[0] == "| order_id | line_number | sku | quantity |"
    rows = read_csv(csv_path)
    assert rows[0]["order_id"] in preview
    personal = ("phone", "street_address_1", "postal_code", "family_name")
    # A row that has every one of them, so that the check below checks something.
    full = [row for row in rows if all(row[name] for name in personal)]
    assert full, "the simulator's orders should include one with a name, address and phone"
    everything = str(file_metadata) + str(ack_metadata)
    for name in personal:
        assert full[0][name] not in everything, name
    assert TOKEN not in everything
