"""Realistic dropship orders, deterministic from a seed.

The orders are built to be awkward in the ways real ones are: SKUs and postal codes with
leading zeros, nil and empty fields, names in several scripts and emoji, ampersands and quotes
that must be escaped, and free text that starts with ``=``, ``+``, ``-`` or ``@`` so that a
spreadsheet export that forgets to neutralise formulas is caught.
"""

from __future__ import annotations

import bisect
import random
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

NIL_GUID = "00000000-0000-0000-0000-000000000000"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SimLine:
    """One ``order-item``."""

    sku: str
    catalog_id: str
    description: str
    quantity: int
    selling_price: Decimal


@dataclass(frozen=True, slots=True)
class SimAddress:
    """A ``shipping-address``; ``type`` is nil for ship-to-store and a CRM name otherwise."""

    address_id: str
    attention_to: str | None
    business_name: str | None
    country: str
    country_code: str
    locality: str
    notes: str | None
    phone: str | None
    post_office_box_number: str | None
    postal_code: str
    region: str
    region_code: str
    street_address_1: str
    street_address_2: str | None
    type: str | None


@dataclass(frozen=True, slots=True)
class SimCustomer:
    """A ``shipping-customer``."""

    alternate_name: str | None
    customer_id: str
    family_name: str | None
    middle_name: str | None
    notes: str | None
    primary_name: str | None
    title: str | None
    type: str


@dataclass(frozen=True, slots=True)
class SimOrder:
    """Everything an ``order-created`` entry says about one order."""

    order_id: str
    supplier_id: int
    company_id: int
    location_id: int
    po_reference: str
    printable_id: str
    ship_to_store: bool
    shipping_address: SimAddress
    shipping_customer: SimCustomer
    shipping_entity_id: int
    shipping_method: str
    lines: tuple[SimLine, ...]


# Region name, code, then (city, first three characters of the postal code or ZIP).
_CANADA: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Saskatchewan", "SK", (("Regina", "S4P"), ("Saskatoon", "S7K"), ("Moose Jaw", "S6H"))),
    ("British Columbia", "BC", (("Vancouver", "V6B"), ("Victoria", "V8W"), ("Kelowna", "V1Y"))),
    ("Ontario", "ON", (("Toronto", "M5V"), ("Ottawa", "K1P"), ("Thunder Bay", "P7B"))),
    ("Québec", "QC", (("Montréal", "H2X"), ("Québec", "G1R"), ("Trois-Rivières", "G9A"))),
    ("Alberta", "AB", (("Calgary", "T2P"), ("Edmonton", "T5J"))),
    ("Manitoba", "MB", (("Winnipeg", "R3C"),)),
    ("Nova Scotia", "NS", (("Halifax", "B3H"),)),
    ("Northwest Territories", "NT", (("Yellowknife", "X1A"),)),
    ("Newfoundland and Labrador", "NL", (("St. John's", "A1C"),)),
)
_USA: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("New York", "NY", (("New York", "100"), ("Buffalo", "142"))),
    ("Massachusetts", "MA", (("Cambridge", "021"), ("Boston", "021"))),
    ("New Jersey", "NJ", (("Princeton", "085"), ("Newark", "071"))),
    ("California", "CA", (("San José", "951"), ("Los Angeles", "900"))),
    ("Texas", "TX", (("Austin", "787"),)),
    ("Washington", "WA", (("Seattle", "981"),)),
    ("Illinois", "IL", (("Chicago", "606"),)),
    ("Puerto Rico", "PR", (("San Juan", "009"),)),
)
# Canadian postal codes never use these letters; a realistic generator avoids them too.
_POSTAL_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"

_STREETS = (
    "Main St",
    "Evergreen Terrace",
    "Anderson-Thomson Blvd",
    "Rue Sainte-Catherine O",
    "Chemin de la Côte-des-Neiges",
    "King St W",
    "Jasper Ave NW",
    "Granville St",
    "Water St",
    "Elm & Oak Ave",
    "Broadway",
    "Albert St",
    "Calle de la Fortaleza",
)
_PRIMARY_NAMES = (
    "Bob",
    "Princess",
    "Zoë",
    "José",
    "François",
    "Renée",
    "Jürgen",
    "Siobhán",
    "María José",
    "Ólafur",
    "Thảo",
    "伟",
    "美玲",
    "Aarav",
    "Chloé",
    "Liam",
    "Noah",
    "Emma",
)
_FAMILY_NAMES = (
    "Eh",
    "Jasmine",
    "Müller",
    "Straße",
    "Łukasiewicz",
    "O'Brien",
    "Tremblay",
    "Nguyễn",
    "王",
    "李",
    "García Márquez",
    "Smith",
    "Gagnon",
    "Østergaard",
    "Da Silva <Jr>",
)
_MIDDLE_NAMES = ("Anne", "Marie", "J.", "Ødegaard", "Ray")
_ALTERNATE_NAMES = ("Bobby 🚀", "小明", "Jojo", "Dr. Zoë 😀")
_TITLES = ("Mr", "Ms", "Mrs", "Dr", "Mx")
_CUSTOMER_NOTES = (
    "Interested in iPhone 16",
    "Prefers e-mail",
    '=HYPERLINK("http://example.com","click me")',
    "+1 call before delivery",
    "-VIP- customer",
    "@front desk",
    "Loyalty member 🎉",
    'Said "don\'t ring" & knock',
)
_ADDRESS_NOTES = (
    "Leave at back door",
    "Buzzer 1203",
    "=2+3",
    "@reception",
    "-no signature-",
    "Code d'entrée : 4512",
)
_UNITS = ("Unit 5", "Apt 1203", "Suite 400", "Bureau 12", "#7")
_BUSINESSES = (
    "Acme Ltd.",
    "Prairie Mobile & Co",
    "Société Générale du Cellulaire",
    "株式会社テスト",
)

_BRANDS = ("Samsung Galaxy S24", "iPhone 16 Pro", "Pixel 9", "Moto g", "OnePlus 12", "iPad Air")
_PRODUCTS = (
    "Standard Battery",
    "Defender Case - Glacier",
    "Tempered Glass Screen Protector",
    "USB-C Cable 2 m",
    "Wall Charger 25W",
    "Car Mount",
    "Étui folio en cuir",
    "Ladekabel für Straßenbahn",
    "保护壳 (中文包装)",
    "Wireless Earbuds 🎧",
    'Case & Holster <Combo> 6.1"',
)
_DESCRIPTION_BAIT = ("=SUM(A1:A9) ", "+Plus ", "-20% ", "@Home ")

_RETAILERS = (
    (14146, "Cellular World"),
    (33772, "Prairie Mobile"),
    (50068, "Wireless Age"),
    (60454, "Connect & Co"),
    (24165, "TéléPlus"),
)
_SHIPPING_METHODS = ("350", "1716", "101", "123", "0042")
_QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 5, 10)
# The CRM AddressType names (API reference, section 5.3) of customer addresses, with cumulative
# shares: most are homes; None is the CRM's own name for "no type", not a nil.
_ADDRESS_TYPES = ("Home", "Shipping", "Office", "Other", "None")
_ADDRESS_TYPE_CUMULATIVE = (0.7, 0.84, 0.94, 0.98)
# Most dropship orders have one line; some have up to five (cumulative shares of 1..4).
_LINE_COUNT_CUMULATIVE = (0.5, 0.75, 0.87, 0.95)


@dataclass(frozen=True, slots=True)
class _Store:
    company_id: int
    location_id: int
    address: SimAddress


def _pick(items: Sequence[_T], roll: float) -> _T:
    return items[int(roll * len(items))]


class OrderGenerator:
    """Makes orders for one or more suppliers from a seeded random generator.

    The same seed gives the same orders in the same sequence. Not thread-safe by itself: the
    simulator's state calls it under its lock. ``repeat_sku_rate`` is the chance that an order
    lists one of its SKUs on a second line as well (a clerk adding more of an item as a new
    line), which is rare in practice and off by default.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        catalog_size: int = 300,
        customer_pool: int = 5000,
        repeat_sku_rate: float = 0.0,
    ) -> None:
        if catalog_size < 25:
            raise ValueError("The catalog needs at least 25 products.")
        if not 0.0 <= repeat_sku_rate <= 1.0:
            raise ValueError(f"repeat_sku_rate must be between 0 and 1, not {repeat_sku_rate!r}.")
        self._repeat_sku_rate = repeat_sku_rate
        self._rng = random.Random(seed)
        self._catalog = [self._product(n) for n in range(catalog_size)]
        self._stores = [
            _Store(company_id, company_id + 1 + n, self._store_address(name, n))
            for company_id, name in _RETAILERS
            for n in range(3)
        ]
        self._printable = 7_400_000 + self._rng.randrange(100_000)
        # Repeat customers are realistic, and sharing their objects lets the renderer reuse
        # their XML: that is what makes a 100,000-order feed quick to build.
        self._customers: list[tuple[SimCustomer, SimAddress]] = []
        self._customer_pool = customer_pool
        self._lines: dict[tuple[int, int], SimLine] = {}

    def guid(self) -> str:
        bits = self._rng.getrandbits
        return (
            f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}-{bits(14) | 0x8000:04x}-{bits(48):012x}"
        )

    def order(self, supplier_id: int) -> SimOrder:
        # Plain random() arithmetic instead of choice()/randint(): five times faster, and
        # prefilling 100,000 orders for the benchmark is dominated by this function.
        roll = self._rng.random
        store = _pick(self._stores, roll())
        ship_to_store = roll() < 0.35
        customer, home = self._returning_or_new_customer()
        count = bisect.bisect(_LINE_COUNT_CUMULATIVE, roll()) + 1
        catalog_size = len(self._catalog)
        first = int(roll() * catalog_size)
        # Consecutive catalog positions keep the SKUs of an order distinct without sampling.
        step = 1 + int(roll() * (catalog_size // 5 - 1))
        positions = [(first + n * step) % catalog_size for n in range(count)]
        # Drawn only when the knob is on, so that the default orders stay what they were.
        if self._repeat_sku_rate and roll() < self._repeat_sku_rate:
            positions.append(_pick(positions, roll()))
        lines = tuple(self._line(position, _pick(_QUANTITIES, roll())) for position in positions)
        self._printable += 1 + int(roll() * 9)
        printable = str(self._printable)
        if roll() < 0.05:
            printable = "0" + printable
        letters = string.ascii_uppercase
        po_reference = (
            f"{_pick(letters, roll())}{_pick(letters, roll())}{1 + int(roll() * 999)}"
            f"{_pick(letters, roll())}{_pick(letters, roll())}{1 + int(roll() * 99)}"
        )
        return SimOrder(
            order_id=self.guid(),
            supplier_id=supplier_id,
            company_id=store.company_id,
            location_id=store.location_id,
            po_reference=po_reference,
            printable_id=printable,
            ship_to_store=ship_to_store,
            shipping_address=store.address if ship_to_store else home,
            shipping_customer=customer,
            shipping_entity_id=store.location_id if ship_to_store else 0,
            shipping_method=_pick(_SHIPPING_METHODS, roll()),
            lines=lines,
        )

    def _returning_or_new_customer(self) -> tuple[SimCustomer, SimAddress]:
        pool = self._customers
        if pool and (len(pool) >= self._customer_pool or self._rng.random() < 0.1):
            return _pick(pool, self._rng.random())
        customer = self._customer()
        pair = (customer, self._home_address(customer))
        pool.append(pair)
        return pair

    def _line(self, index: int, quantity: int) -> SimLine:
        line = self._lines.get((index, quantity))
        if line is None:
            product = self._catalog[index]
            line = SimLine(
                sku=product.sku,
                catalog_id=product.catalog_id,
                description=product.description,
                quantity=quantity,
                selling_price=product.selling_price,
            )
            self._lines[index, quantity] = line
        return line

    # ---- parts ---------------------------------------------------------------------------

    def _product(self, n: int) -> SimLine:
        rng = self._rng
        description = f"{rng.choice(_BRANDS)} {rng.choice(_PRODUCTS)}"
        if rng.random() < 0.06:
            description = rng.choice(_DESCRIPTION_BAIT) + description
        if rng.random() < 0.15:
            price = Decimal(rng.choice((10, 42, 100, 250)))
        else:
            price = Decimal(rng.randint(299, 149_999)) / 100
        return SimLine(
            sku=self._sku(n),
            catalog_id=self.guid(),
            description=description,
            quantity=1,
            selling_price=price,
        )

    def _sku(self, n: int) -> str:
        # The index keeps SKUs unique, so an ItemStatusUpdate can always name its line.
        rng = self._rng
        letters = string.ascii_uppercase
        style = n % 5
        if style == 0:
            return f"{n:05d}-{rng.choice(letters)}{rng.choice(letters)}"
        if style == 1:
            pair = "".join(rng.choices(letters, k=2))
            return f"{pair}-{''.join(rng.choices(letters, k=2))}{n:04d}-{pair[::-1]}"
        if style == 2:
            return f"{rng.randint(1000, 9999)}{''.join(rng.choices(letters, k=4))}{n}"
        if style == 3:
            tail = "".join(rng.choices(letters + string.digits, k=5))
            return f"B00{tail}{n:03d}"
        return f"0{n:04d}{rng.randint(10, 99)}"

    def _customer(self) -> SimCustomer:
        rng = self._rng
        roll = rng.random()
        kind = "Person" if roll < 0.85 else "Company" if roll < 0.95 else "None"
        return SimCustomer(
            alternate_name=rng.choice(_ALTERNATE_NAMES) if rng.random() < 0.08 else None,
            customer_id=self.guid(),
            family_name=rng.choice(_FAMILY_NAMES),
            middle_name=rng.choice(_MIDDLE_NAMES) if rng.random() < 0.15 else None,
            notes=self._maybe(_CUSTOMER_NOTES, 0.3),
            primary_name=rng.choice(_PRIMARY_NAMES),
            title=rng.choice(_TITLES) if rng.random() < 0.6 else None,
            type=kind,
        )

    def _maybe(self, choices: tuple[str, ...], rate: float) -> str | None:
        """A value from ``choices`` at ``rate``; otherwise nil, and now and then empty."""
        roll = self._rng.random()
        if roll < rate:
            return self._rng.choice(choices)
        if roll < rate + 0.03:
            return ""
        return None

    def _place(self) -> tuple[str, str, str, str, str, str]:
        """Country, country code, region, region code, city and a postal code or ZIP."""
        rng = self._rng
        if rng.random() < 0.65:
            region, code, cities = rng.choice(_CANADA)
            city, prefix = rng.choice(cities)
            rest = f"{rng.randint(0, 9)}{rng.choice(_POSTAL_LETTERS)}{rng.randint(0, 9)}"
            postal = f"{prefix} {rest}" if rng.random() < 0.7 else f"{prefix}{rest}"
            return "Canada", "CA", region, code, city, postal
        region, code, cities = rng.choice(_USA)
        city, prefix = rng.choice(cities)
        postal = f"{prefix}{rng.randint(0, 99):02d}"
        if rng.random() < 0.3:
            postal += f"-{rng.randint(0, 9999):04d}"
        return "United States", "US", region, code, city, postal

    def _phone(self) -> str | None:
        rng = self._rng
        roll = rng.random()
        if roll < 0.3:
            return None
        area, number = rng.randint(200, 989), rng.randint(0, 9999)
        if roll < 0.6:
            return f"({area}) 555-{number:04d}"
        if roll < 0.85:
            return f"+1 {area} 555 {number:04d}"
        return f"{area}555{number:04d}"

    def _street(self) -> str:
        return f"{self._rng.randint(1, 9999)} {self._rng.choice(_STREETS)}"

    def _store_address(self, retailer: str, n: int) -> SimAddress:
        country, country_code, region, region_code, city, postal = self._place()
        return SimAddress(
            address_id=NIL_GUID,
            attention_to="Store Manager",
            business_name=f"{retailer} {city} #{n + 1}",
            country=country,
            country_code=country_code,
            locality=city,
            notes=None,
            phone=self._phone() or "(306) 555-0100",
            post_office_box_number=None,
            postal_code=postal,
            region=region,
            region_code=region_code,
            street_address_1=self._street(),
            street_address_2=None,
            type=None,
        )

    def _home_address(self, customer: SimCustomer) -> SimAddress:
        rng = self._rng
        country, country_code, region, region_code, city, postal = self._place()
        company = customer.type == "Company"
        return SimAddress(
            address_id=self.guid(),
            attention_to=f"{customer.primary_name} {customer.family_name}"
            if rng.random() < 0.3
            else None,
            business_name=rng.choice(_BUSINESSES) if company else None,
            country=country,
            country_code=country_code,
            locality=city,
            notes=self._maybe(_ADDRESS_NOTES, 0.2),
            phone=self._phone(),
            post_office_box_number=f"PO Box {rng.randint(1, 999)}" if rng.random() < 0.05 else None,
            postal_code=postal,
            region=region,
            region_code=region_code,
            street_address_1=self._street(),
            street_address_2=rng.choice(_UNITS) if rng.random() < 0.25 else None,
            type=_ADDRESS_TYPES[bisect.bisect(_ADDRESS_TYPE_CUMULATIVE, rng.random())],
        )


class OrderStream:
    """Calls ``make_order`` at ``rate`` orders per second on a background thread until stopped."""

    def __init__(self, make_order: Callable[[], object], rate: float) -> None:
        if rate <= 0:
            raise ValueError("An order stream needs a positive rate (orders per second).")
        self._make_order = make_order
        self._interval = 1.0 / rate
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulator-orders", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._make_order()
