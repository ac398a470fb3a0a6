"""Export benchmark: the order-file writers against the plainest writers of the same rows.

    .venv/bin/python benchmarks/export.py [--orders 10000] [--repeat 3]

Builds ``--orders`` deterministic orders (about three lines each: Unicode names, nil fields,
leading-zero SKUs, notes that start like formulas) as one DataFrame, then times in the same run,
best of ``--repeat`` rounds (twice as many for CSV) in which the writers take turns:

- ``csv-module``: ``csv.writer`` writing the rows, already taken out of the DataFrame as Python
  tuples, to a ``StringIO``, encoded to UTF-8 (no typing, no neutralising: the floor);
- ``render_csv``: our CSV writer, from the DataFrame;
- ``openpyxl-plain``: openpyxl in write-only mode appending the same prepared rows, no styles;
- ``render_xlsx`` with each engine (xlsxwriter, openpyxl), from the DataFrame.

Then uploads the rendered CSV and XLSX to the embedded SFTP server, ``SftpDrop.write_atomic``
(temporary dot-name, size check, rename) against a raw paramiko ``putfo`` of the same bytes,
taking turns on two connections open for the whole race.

Prints each time and the ratio to its baseline (target: at most 1.5). Not a test.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import paramiko

from dropship_pipeline.erp.drop import open_drop
from dropship_pipeline.erp.writers import ORDER_FILE_COLUMNS, render_csv, render_xlsx
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer

TARGET_RATIO = 1.5

GIVEN_NAMES = ["Amélie", "Jürgen", "Søren", "Zoë", "Ana", "José", "Łukasz", "美玲", "Priya", "Sam"]
FAMILY_NAMES = ["Groß", "Núñez", "O'Brien", "Çelik", "王", "Smith", "Nguyễn", "Kowalski"]
CITIES = [
    ("Regina", "Saskatchewan", "SK"),
    ("Montréal", "Québec", "QC"),
    ("St. John's", "Newfoundland and Labrador", "NL"),
    ("Vancouver", "British Columbia", "BC"),
]
PRODUCTS = [
    ("Phone case, clear", "19.99"),
    ('USB-C cable 2 m, "braided"', "14.5"),
    ("Écouteurs sans fil 🎧", "129.00"),
    ("Screen protector\n(2-pack)", "9.99"),
    ("Car charger 30 W", "24.95"),
    ("Power bank 10 000 mAh", "49"),
]
NOTES = [None, None, None, "Leave at the back door.", "-- fragile --", "+1 call before", "近くの店"]


def build_orders(order_count: int, seed: int = 20261203) -> pd.DataFrame:
    """``order_count`` orders with one to five lines each, the same for the same seed."""
    rng = random.Random(seed)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    records: list[dict[str, object]] = []
    for number in range(order_count):
        city, region, region_code = rng.choice(CITIES)
        to_store = rng.random() < 0.2
        order = {
            "order_id": f"{rng.getrandbits(128):032x}",
            "printable_id": f"DS{number:07d}",
            "po_reference": None if rng.random() < 0.5 else f"PO-{rng.randrange(10**6):06d}",
            "created_at": start + timedelta(seconds=17 * number),
            "supplier_id": "14107",
            "seller_company_id": "1234",
            "seller_location_id": f"{rng.randrange(10**4):05d}",
            "ship_to_store": to_store,
            "shipping_method": rng.choice(["Ground", "Express", None]),
            "shipping_entity_id": None if to_store else f"{rng.randrange(10**5):06d}",
            "customer_id": f"{rng.getrandbits(64):016x}",
            "customer_type": rng.choice(["Person", "Company"]),
            "title": rng.choice([None, "Mr.", "Ms.", "Dr."]),
            "primary_name": rng.choice(GIVEN_NAMES),
            "middle_name": None,
            "family_name": rng.choice(FAMILY_NAMES),
            "alternate_name": None,
            "customer_notes": rng.choice(NOTES),
            "address_type": "Shipping",
            "attention_to": None,
            "business_name": None if rng.random() < 0.9 else "Müller & Söhne GmbH",
            "street_address_1": f"{rng.randrange(1, 9999)} {rng.choice(['Rue', 'Main St', 'Av.'])}",
            "street_address_2": None if rng.random() < 0.8 else f"Apt {rng.randrange(1, 999)}",
            "post_office_box_number": None,
            "locality": city,
            "region": region,
            "region_code": region_code,
            "postal_code": f"0{rng.randrange(10**4):04d}",
            "country": "Canada",
            "country_code": "CA",
            "phone": f"0{rng.randrange(10**9):09d}",
            "address_notes": None,
        }
        for line_number in range(1, rng.randint(1, 5) + 1):
            description, price = rng.choice(PRODUCTS)
            records.append(
                order
                | {
                    "line_number": line_number,
                    "sku": f"{rng.randrange(10**6):08d}",
                    "catalog_id": f"{rng.getrandbits(64):016x}",
                    "description": description,
                    "quantity": rng.randint(1, 4),
                    "selling_price": None if rng.random() < 0.01 else Decimal(price),
                }
            )
    return pd.DataFrame.from_records(records, columns=list(ORDER_FILE_COLUMNS))


def race(repeat: int, jobs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each job over ``repeat`` rounds, the jobs taking turns within a round.

    Taking turns exposes every job to the same background load, so the ratios hold up on a busy
    machine better than timing one job's repetitions after the other's.
    """
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeat):
        for label, job in jobs.items():
            started = time.perf_counter()
            job()
            best[label] = min(best[label], time.perf_counter() - started)
    return best


def plain_csv(header: list[str], rows: list[tuple[object, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def plain_openpyxl(header: list[str], rows: list[tuple[object, ...]]) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Orders")
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    frame = build_orders(args.orders)
    header = list(ORDER_FILE_COLUMNS)
    csv_rows = list(frame.itertuples(index=False, name=None))
    # openpyxl refuses tz-aware datetimes and skips None (not NaN): give it what it takes.
    plain = frame.assign(created_at=frame["created_at"].dt.tz_convert(None)).astype(object)
    xlsx_rows = list(plain.where(plain.notna(), None).itertuples(index=False, name=None))
    print(f"{args.orders} orders, {len(frame)} lines, best of {args.repeat} rounds")

    csv_bytes = render_csv(frame)
    xlsx_bytes = render_xlsx(frame)
    print(f"CSV {len(csv_bytes) / 1e6:.1f} MB, XLSX {len(xlsx_bytes) / 1e6:.1f} MB")

    results = race(
        args.repeat * 2,  # CSV rounds are cheap: twice as many steadies the ratio
        {
            "csv-module": lambda: plain_csv(header, csv_rows),
            "render_csv": lambda: render_csv(frame),
        },
    )
    results |= race(
        args.repeat,
        {
            "openpyxl-plain": lambda: plain_openpyxl(header, xlsx_rows),
            "render_xlsx (xlsxwriter)": lambda: render_xlsx(frame, engine="xlsxwriter"),
            "render_xlsx (openpyxl)": lambda: render_xlsx(frame, engine="openpyxl"),
        },
    )

    print(f"{'writer':<28}{'seconds':>10}{'lines/s':>12}")
    for label, seconds in results.items():
        print(f"{label:<28}{seconds:>10.3f}{len(frame) / seconds:>12,.0f}")
    print()
    for label, baseline in (
        ("render_csv", "csv-module"),
        ("render_xlsx (xlsxwriter)", "openpyxl-plain"),
        ("render_xlsx (openpyxl)", "openpyxl-plain"),
    ):
        ratio = results[label] / results[baseline]
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
        print(f"{label} / {baseline}: {ratio:.2f}  (target <= {TARGET_RATIO}) {verdict}")

    # ---- SFTP upload ----------------------------------------------------------------------
    print()
    upload_benchmark({"csv": csv_bytes, "xlsx": xlsx_bytes}, args.repeat * 2)


def upload_benchmark(files: dict[str, bytes], repeat: int) -> None:
    """Upload rate to the embedded SFTP server: ``SftpDrop.write_atomic`` against a raw
    paramiko ``putfo`` of the same bytes, taking turns, each on one open connection."""
    password = secrets.token_urlsafe(12)
    with (
        tempfile.TemporaryDirectory() as root,
        EmbeddedSftpServer(Path(root), username="bench", password=password) as server,
    ):
        settings = Settings(
            supplier_id=1,
            drop_url=server.url,
            sftp_password=password,
            sftp_known_hosts=server.known_hosts_path,
        )
        ssh = paramiko.SSHClient()
        ssh.load_host_keys(str(server.known_hosts_path))
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        ssh.connect(
            server.host,
            port=server.port,
            username="bench",
            password=password,
            allow_agent=False,
            look_for_keys=False,
            timeout=30,
        )
        drop = open_drop(settings)
        try:
            raw = ssh.open_sftp()
            drop.make_folder("drop")
            raw.mkdir("putfo")
            rounds = itertools.count()

            def via_drop(data: bytes, suffix: str) -> None:
                drop.write_atomic(f"drop/bench_{next(rounds)}.{suffix}", data)

            def via_putfo(data: bytes, suffix: str) -> None:
                raw.putfo(io.BytesIO(data), f"putfo/bench_{next(rounds)}.{suffix}")

            print(f"{'upload':<28}{'seconds':>10}{'MB/s':>12}")
            for suffix, data in files.items():
                results = race(
                    repeat,
                    {
                        f"putfo {suffix}": lambda d=data, s=suffix: via_putfo(d, s),
                        f"write_atomic {suffix}": lambda d=data, s=suffix: via_drop(d, s),
                    },
                )
                for label, seconds in results.items():
                    print(f"{label:<28}{seconds:>10.3f}{len(data) / seconds / 1e6:>12.1f}")
                ratio = results[f"write_atomic {suffix}"] / results[f"putfo {suffix}"]
                verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
                print(
                    f"write_atomic / putfo ({suffix}, {len(data) / 1e6:.1f} MB): {ratio:.2f}  "
                    f"(target <= {TARGET_RATIO}) {verdict}"
                )
            raw.close()
        finally:
            drop.close()
            ssh.close()


if __name__ == "__main__":
    main()
