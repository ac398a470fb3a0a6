"""The simulated Dropship service, checked over real HTTP on loopback.

Pages are read with lxml and with feedparser (an independent Atom reader), so a malformed page
fails here before it can fail the pipeline's own parser in a confusing way.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import etree

from dropship_pipeline.simulator import Faults, OrderGenerator, SimulatorServer
from dropship_pipeline.simulator.cli import add_arguments

ATOM = "{http://www.w3.org/2005/Atom}"
ATOM_HTTPS = "{https://www.w3.org/2005/Atom}"
DS = "{urn:iQmetrix:dropship}"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUPPLIER = 14107
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)

MakeSimulator = Callable[..., SimulatorServer]


def client(sim: SimulatorServer, *, token: str | None = None) -> httpx.Client:
    """A client with a fresh password-grant token (or the given one)."""
    if token is None:
        token = grant(sim).json()["access_token"]
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)


def grant(sim: SimulatorServer, **changes: str) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": "supplier@example.com",
        "password": "simulator-password",
        "client_id": "simulator-client",
        "client_secret": "simulator-secret",
        **changes,
    }
    return httpx.post(f"{sim.base_url}/oauth2/token", data=form, timeout=10)


def feed_url(sim: SimulatorServer, supplier: int = SUPPLIER) -> str:
    return f"{sim.base_url}/Suppliers({supplier})/Notifications"


def links(root: etree._Element, ns: str = ATOM) -> dict[str, str]:
    return {link.get("rel"): link.get("href") for link in root.findall(f"{ns}link")}


def entry_ids(root: etree._Element, ns: str = ATOM) -> list[str]:
    return [e.findtext(f"{ns}id") for e in root.findall(f"{ns}entry")]


def parse_page(body: bytes, *, feedparser_too: bool = True) -> etree._Element:
    """Parse with lxml and check that feedparser reads it as well-formed Atom too.

    feedparser takes a good fraction of a second per full page, so long walks use it sparingly.
    """
    root = etree.fromstring(body, SAFE_PARSER)
    if not feedparser_too:
        return root
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert len(parsed.entries) == len(root.findall(f"{ATOM}entry"))
    return root


def walk_back(http: httpx.Client, url: str) -> list[tuple[str, bytes, etree._Element]]:
    """Every page from ``url`` along prev-archive links, newest first."""
    pages = []
    while url:
        response = http.get(url)
        assert response.status_code == 200, response.text
        root = parse_page(response.content, feedparser_too=len(pages) < 2)
        pages.append((url, response.content, root))
        url = links(root).get("prev-archive", "")
    return pages


def all_entry_ids(http: httpx.Client, sim: SimulatorServer) -> list[str]:
    return [i for _, _, root in walk_back(http, feed_url(sim)) for i in entry_ids(root)]


# ---- the feed --------------------------------------------------------------------------------


@pytest.mark.parametrize("events", [0, 1, 50, 51, 120, pytest.param(5000, marks=pytest.mark.slow)])
def test_page_chains_are_intact_from_current_to_oldest_and_back(
    simulator: SimulatorServer, events: int
) -> None:
    orders = simulator.state.add_orders(events)
    expected = [o.order_id for o in orders]

    with client(simulator) as http:
        pages = walk_back(http, feed_url(simulator))
        page_ids = simulator.state.page_ids()
        assert len(pages) == max(1, -(-events // 50))
        assert [links(root)["self"].rsplit("(", 1)[1][:-1] for _, _, root in pages] == list(
            reversed(page_ids)
        )

        for n, (_, _, root) in enumerate(pages):
            rels = links(root)
            page_id = page_ids[len(pages) - 1 - n]
            assert root.findtext(f"{ATOM}id") == f"urn:uuid:{page_id}"
            assert rels["self"] == f"{feed_url(simulator)}/Pages({page_id})"
            assert rels["current"] == feed_url(simulator)
            assert ("next-archive" in rels) == (n > 0)
            assert ("prev-archive" in rels) == (n < len(pages) - 1)
            assert len(root.findall(f"{ATOM}entry")) == (
                50 if n else events - 50 * (len(pages) - 1)
            )

        # Back again along next-archive, from the oldest page to the current page's own URL.
        url, seen = links(pages[-1][2])["self"], []
        while True:
            root = parse_page(http.get(url).content, feedparser_too=False)
            seen.append(links(root)["self"])
            if "next-archive" not in links(root):
                break
            url = links(root)["next-archive"]
        assert seen == [links(root)["self"] for _, _, root in reversed(pages)]

    order_ids = [
        e.findtext(f"{ATOM}content/{DS}order-created/{DS}order-id")
        for _, _, root in pages
        for e in root.findall(f"{ATOM}entry")
    ]
    assert order_ids == list(reversed(expected)), "entries must come newest first, each once"


def test_an_empty_feed_has_a_page_id_no_entries_and_no_prev_archive(
    simulator: SimulatorServer,
) -> None:
    with client(simulator) as http:
        response = http.get(feed_url(simulator))
    root = parse_page(response.content)
    assert response.headers["content-type"] == "application/atom+xml"
    assert root.findall(f"{ATOM}entry") == []
    assert set(links(root)) == {"current", "self"}
    assert root.findtext(f"{ATOM}title") == "Dropship Order Event Feed"
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "iQmetrix"


def test_rollover_keeps_every_event_exactly_once(simulator: SimulatorServer) -> None:
    simulator.state.add_orders(120)
    with client(simulator) as http:
        before = all_entry_ids(http, simulator)
        simulator.state.add_orders(45)
        after = all_entry_ids(http, simulator)
    assert len(before) == len(set(before)) == 120
    assert len(after) == len(set(after)) == 165
    assert set(before) <= set(after)
    assert after[-120:] == before, "older entries keep their place behind the new ones"


def test_archive_pages_never_change_once_archived(simulator: SimulatorServer) -> None:
    simulator.state.add_orders(75)
    with client(simulator) as http:
        first, second = simulator.state.page_ids()
        archive_url = f"{feed_url(simulator)}/Pages({first})"
        archived = http.get(archive_url).content
        was_current = entry_ids(parse_page(http.get(feed_url(simulator)).content))
        simulator.state.add_orders(130)

        # The page that was current is now an archive: same id, its entries and more, new links.
        root = parse_page(http.get(f"{feed_url(simulator)}/Pages({second})").content)
        assert entry_ids(root)[-len(was_current) :] == was_current
        assert len(entry_ids(root)) == 50
        assert "next-archive" in links(root)

        simulator.state.set_faults({"https_atom_namespace": True})
        assert http.get(archive_url).content == archived


def test_the_current_page_is_also_served_at_its_stable_page_url(
    simulator: SimulatorServer,
) -> None:
    simulator.state.add_orders(60)
    current = simulator.state.page_ids()[-1]
    with client(simulator) as http:
        assert (
            http.get(f"{feed_url(simulator)}/Pages({current.upper()})").content
            == http.get(feed_url(simulator)).content
        )


def test_entries_have_the_shape_of_the_real_feed(simulator: SimulatorServer) -> None:
    simulator.state.add_orders(3)
    with client(simulator) as http:
        root = parse_page(http.get(feed_url(simulator)).content)
    fixture = etree.parse(str(FIXTURES / "seed_feed_current.xml"), SAFE_PARSER).getroot()

    def shape(element: etree._Element) -> list[str]:
        names = [etree.QName(child).localname for child in element]
        return names

    ours = root.find(f"{ATOM}entry")
    theirs = fixture.findall(f"{ATOM_HTTPS}entry")[1]
    assert [etree.QName(c).localname for c in ours] == [etree.QName(c).localname for c in theirs]
    assert ours.find(f"{ATOM}content").get("type") == "application/xml"
    created = ours.find(f"{ATOM}content/{DS}order-created")
    their_created = theirs.find(f"{ATOM_HTTPS}content/{DS}order-created")
    assert shape(created) == shape(their_created)
    for part in ("seller", "shipping-address", "shipping-customer"):
        assert shape(created.find(f"{DS}{part}")) == shape(their_created.find(f"{DS}{part}"))
    assert shape(created.find(f"{DS}items/{DS}order-item")) == shape(
        their_created.find(f"{DS}items/{DS}order-item")
    )
    for element in created.iter():
        assert shape(element) == sorted(shape(element)), "children in alphabetical order"
        if element.get(XSI_NIL) is not None:
            assert element.get(XSI_NIL) == "true" and element.text is None


def test_text_is_escaped_and_survives_a_round_trip(simulator: SimulatorServer) -> None:
    generator = OrderGenerator(seed=7)
    order = generator.order(SUPPLIER)
    nasty = "A & B <c> \"d\" 'e' 🚀 中文 ß\r\nnext\x01line"
    address = replace(order.shipping_address, notes=nasty, street_address_2="")
    order = replace(order, shipping_address=address, po_reference="<PO&1>")
    simulator.state.add_order(order)
    with client(simulator) as http:
        root = parse_page(http.get(feed_url(simulator)).content)
    created = root.find(f"{ATOM}entry/{ATOM}content/{DS}order-created")
    assert created.findtext(f"{DS}seller/{DS}po-reference") == "<PO&1>"
    notes = created.findtext(f"{DS}shipping-address/{DS}notes")
    assert notes == nasty.replace("\x01", "\ufffd")
    assert created.findtext(f"{DS}shipping-address/{DS}street-address-2") == ""


def test_the_generator_is_deterministic_and_realistic() -> None:
    first = [OrderGenerator(seed=3).order(SUPPLIER) for _ in range(1)]
    again = [OrderGenerator(seed=3).order(SUPPLIER) for _ in range(1)]
    assert first == again
    assert OrderGenerator(seed=4).order(SUPPLIER) != first[0]

    generator = OrderGenerator(seed=11)
    orders = [generator.order(SUPPLIER) for _ in range(3000)]
    assert {len(o.lines) for o in orders} == {1, 2, 3, 4, 5}
    assert all(len({line.sku for line in o.lines}) == len(o.lines) for o in orders)
    assert len({o.order_id for o in orders}) == len(orders)
    stores = [o for o in orders if o.ship_to_store]
    homes = [o for o in orders if not o.ship_to_store]
    assert stores and homes
    assert all(o.shipping_entity_id == o.location_id for o in stores)
    assert all(o.shipping_address.type is None for o in stores)
    assert all(o.shipping_entity_id == 0 for o in homes)
    types = Counter(o.shipping_address.type for o in homes)
    assert set(types) == {"Home", "Shipping", "Office", "Other", "None"}, "CRM AddressType names"
    assert types.most_common(1)[0][0] == "Home" and types["Home"] > len(homes) / 2
    assert {o.shipping_address.country_code for o in orders} == {"CA", "US"}
    us_zips = [
        o.shipping_address.postal_code for o in orders if o.shipping_address.country_code == "US"
    ]
    assert any(z.startswith("0") for z in us_zips)
    assert any(re.fullmatch(r"0\d{4}-[A-Z]{2}", line.sku) for o in orders for line in o.lines)
    assert any(o.shipping_address.phone is None for o in orders)
    assert any(o.shipping_address.street_address_2 is None for o in orders)
    assert any(o.shipping_customer.middle_name is None for o in orders)
    assert any(o.shipping_customer.notes == "" for o in orders)
    texts = [
        value
        for o in orders
        for value in (
            o.shipping_customer.primary_name,
            o.shipping_customer.family_name,
            o.shipping_customer.alternate_name,
            o.shipping_customer.notes,
            o.shipping_address.notes,
            *(line.description for line in o.lines),
        )
        if value
    ]
    for sample in ("é", "ß", "中", "😀", "&"):
        assert any(sample in text for text in texts), sample
    for bait in "=+-@":
        assert any(text.startswith(bait) for text in texts), bait
    assert all(isinstance(line.selling_price, Decimal) for o in orders for line in o.lines)


def test_the_generator_repeats_a_sku_within_an_order_only_when_asked() -> None:
    def repeats(orders: list) -> int:
        return sum(len({line.sku for line in o.lines}) < len(o.lines) for o in orders)

    plain = OrderGenerator(seed=5)
    assert repeats([plain.order(SUPPLIER) for _ in range(500)]) == 0
    rare = OrderGenerator(seed=5, repeat_sku_rate=0.1)
    orders = [rare.order(SUPPLIER) for _ in range(500)]
    assert 25 <= repeats(orders) <= 80
    assert all(len(o.lines) - len({line.sku for line in o.lines}) <= 1 for o in orders)
    with pytest.raises(ValueError, match="repeat_sku_rate"):
        OrderGenerator(repeat_sku_rate=1.5)


def test_orders_keep_coming_at_the_configured_rate(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(order_rate=50.0)
    deadline = time.monotonic() + 3
    while sim.state.event_count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.state.event_count() >= 3


# ---- errors of the feed endpoints ---------------------------------------------------------------


def test_bad_supplier_and_page_ids_get_the_documented_400s(simulator: SimulatorServer) -> None:
    with client(simulator) as http:
        for supplier in ("abc", "14107x", "99999"):
            response = http.get(f"{simulator.base_url}/Suppliers({supplier})/Notifications")
            assert response.status_code == 400
            assert response.json() == {"Message": "Cannot find supplier identifier in the uri"}
        for page in ("not-a-guid", "0b05f9fb-1210-4494-b654-d051948716b4"):
            response = http.get(f"{feed_url(simulator)}/Pages({page})")
            assert response.status_code == 400
            assert response.json() == {"Message": "The request is invalid"}
        response = http.get(f"{simulator.base_url}/Zxppliers({SUPPLIER})/Notifications")
        assert response.status_code == 404
        assert response.json() == {"Message": "Not found"}


# ---- tokens ----------------------------------------------------------------------------------


def test_a_password_grant_gives_a_working_token(simulator: SimulatorServer) -> None:
    response = grant(simulator)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token"}
    assert body["expires_in"] == 43199
    with client(simulator, token=body["access_token"]) as http:
        assert http.get(feed_url(simulator)).status_code == 200


def test_a_refresh_issues_new_tokens_and_revokes_the_old_access_token(
    simulator: SimulatorServer,
) -> None:
    first = grant(simulator).json()
    other = grant(simulator).json()
    refreshed = httpx.post(
        f"{simulator.base_url}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "simulator-client",
            "client_secret": "simulator-secret",
            "refresh_token": first["refresh_token"],
        },
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] not in {first["access_token"], other["access_token"]}

    with client(simulator, token=first["access_token"]) as http:
        assert http.get(feed_url(simulator)).status_code == 401
    for token in (other["access_token"], new["access_token"]):
        with client(simulator, token=token) as http:
            assert http.get(feed_url(simulator)).status_code == 200

    again = httpx.post(
        f"{simulator.base_url}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "simulator-client",
            "client_secret": "simulator-secret",
            "refresh_token": first["refresh_token"],
        },
    )
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant"}


def refresh(sim: SimulatorServer, token: str, client_id: str, secret: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": secret,
        "refresh_token": token,
    }
    return httpx.post(f"{sim.base_url}/oauth2/token", data=form, timeout=10)


def test_a_refresh_by_another_known_client_is_an_invalid_grant(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(other_clients={"second-client": "second-secret"})
    issued = grant(sim).json()

    by_other = refresh(sim, issued["refresh_token"], "second-client", "second-secret")
    by_unknown = refresh(sim, issued["refresh_token"], "nobody", "second-secret")
    by_owner = refresh(sim, issued["refresh_token"], "simulator-client", "simulator-secret")

    assert (by_other.status_code, by_other.json()) == (400, {"error": "invalid_grant"})
    assert (by_unknown.status_code, by_unknown.json()) == (400, {"error": "invalid_client"})
    assert by_owner.status_code == 200, "a refused attempt does not use the token up"
    second = grant(sim, client_id="second-client", client_secret="second-secret")
    assert second.status_code == 200, "the other client is a real one"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"password": "wrong"}, "invalid_grant"),
        ({"username": "nobody@example.com"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, "invalid_grant"),
    ],
)
def test_the_token_endpoint_answers_the_documented_400s(
    simulator: SimulatorServer, changes: dict[str, str], error: str
) -> None:
    response = grant(simulator, **changes)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_grant_parameters_outside_the_form_body_are_not_read(simulator: SimulatorServer) -> None:
    response = httpx.post(
        f"{simulator.base_url}/oauth2/token",
        params={
            "grant_type": "password",
            "username": "supplier@example.com",
            "password": "simulator-password",
            "client_id": "simulator-client",
            "client_secret": "simulator-secret",
        },
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic c2ltdWxhdG9y", "Bearer"])
def test_protected_endpoints_answer_401_in_plain_text(
    simulator: SimulatorServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, url in (
        ("GET", feed_url(simulator)),
        ("PUT", f"{simulator.base_url}/Suppliers({SUPPLIER})/Orders(x)/OrderStatusUpdate"),
    ):
        response = httpx.request(method, url, headers=headers, json={})
        assert response.status_code == 401
        assert response.text == "Invalid token"
        assert response.headers["content-type"].startswith("text/plain")


def test_an_expired_token_is_refused(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(expires_in=0)
    token = grant(sim).json()["access_token"]
    with client(sim, token=token) as http:
        assert http.get(feed_url(sim)).status_code == 401


def test_a_configured_fixed_token_is_accepted(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(access_token="fixed-token-for-tests")
    with client(sim, token="fixed-token-for-tests") as http:
        assert http.get(feed_url(sim)).status_code == 200


# ---- status updates -----------------------------------------------------------------------------


def put(http: httpx.Client, sim: SimulatorServer, order_id: str, kind: str, body: object):
    url = f"{sim.base_url}/Suppliers({SUPPLIER})/Orders({order_id})/{kind}"
    return http.put(url, json=body)


@pytest.fixture
def order_sim(simulator: SimulatorServer) -> Iterator[tuple[SimulatorServer, httpx.Client, str]]:
    """A simulator with a few orders, a client, and the id of an order with several lines."""
    orders = simulator.state.add_orders(40)
    order = next(o for o in orders if len(o.lines) >= 2)
    with client(simulator) as http:
        yield simulator, http, order.order_id


def newest_entry(http: httpx.Client, sim: SimulatorServer) -> etree._Element:
    root = parse_page(http.get(feed_url(sim)).content)
    return root.find(f"{ATOM}entry")


def test_an_order_status_update_is_echoed_and_appended_to_the_feed(order_sim) -> None:
    sim, http, order_id = order_sim
    response = put(
        http,
        sim,
        order_id,
        "OrderStatusUpdate",
        {"Id": order_id, "Status": 2, "TrackingInfo": "1Z999", "ShippingProvider": "UPS"},
    )
    assert response.status_code == 202
    assert response.json() == {
        "Id": order_id,
        "Status": "Shipped",
        "TrackingInfo": "1Z999",
        "ShippingProvider": "UPS",
        "Info": None,
        "Message": None,
    }

    entry = newest_entry(http, sim)
    assert entry.findtext(f"{ATOM}title") == "Dropship Order Status Updated"
    updated = entry.find(f"{ATOM}content/{DS}order-status-updated")
    assert updated.findtext(f"{DS}order-id") == order_id
    assert [etree.QName(c).localname for c in updated] == [
        "company-id",
        "items",
        "order-id",
        "supplier-id",
    ]
    items = updated.findall(f"{DS}items/{DS}item-information")
    order = sim.state.order(order_id)
    assert [i.findtext(f"{DS}sku") for i in items] == [i["sku"] for i in order["items"]]
    assert {i.findtext(f"{DS}status") for i in items} == {"Shipped"}
    assert {i.findtext(f"{DS}tracking-info") for i in items} == {"1Z999"}
    assert items[0].find(f"{DS}message").get(XSI_NIL) == "true"

    assert order["status"] == "Shipped"
    assert {i["status"] for i in order["items"]} == {"Shipped"}
    assert all(i["shipped_quantity"] == i["quantity"] for i in order["items"])


def test_status_is_read_as_a_name_or_a_number(order_sim) -> None:
    sim, http, order_id = order_sim
    for status, name in (
        ("Ordered", "Ordered"),
        ("backordered", "BackOrdered"),
        (6, "PartiallyShipped"),
    ):
        response = put(http, sim, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": status})
        assert response.status_code == 202
        assert response.json()["Status"] == name


def test_an_item_status_update_fills_catalog_id_and_quantity_in_its_echo(order_sim) -> None:
    sim, http, order_id = order_sim
    line = sim.state.order(order_id)["items"][1]
    response = put(
        http,
        sim,
        order_id,
        "ItemStatusUpdate",
        {
            "Id": order_id,
            "ItemInformation": [
                {"Sku": line["sku"], "Status": 6, "TrackingInfo": 9870873242, "ProductName": "x"}
            ],
        },
    )
    assert response.status_code == 202
    assert response.json() == {
        "Id": order_id,
        "ItemInformation": [
            {
                "Sku": line["sku"],
                "CatalogId": line["catalog_id"],
                "Quantity": line["quantity"],
                "Status": "PartiallyShipped",
                "TrackingInfo": "9870873242",
                "ShippingProvider": None,
                "Info": None,
                "Message": None,
            }
        ],
    }
    items = newest_entry(http, sim).findall(
        f"{ATOM}content/{DS}order-status-updated/{DS}items/{DS}item-information"
    )
    assert [i.findtext(f"{DS}sku") for i in items] == [line["sku"]]
    order = sim.state.order(order_id)
    assert order["items"][1]["status"] == "PartiallyShipped"
    assert order["items"][0]["status"] == "PendingSupplier"
    assert order["status"] == "PartiallyShipped"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Status": 1}, "Id"),
        ({"Id": "0b05f9fb-1210-4494-b654-d051948716b4", "Status": 1}, "Id"),
        ({"Id": "{order}", "Status": 9}, "Status"),
        ({"Id": "{order}", "Status": "Exception"}, "Status"),
        ({"Id": "{order}", "Status": True}, "Status"),
        ({"Id": "{order}", "Status": 1, "Message": 5}, "Message"),
        (["not", "an", "object"], ""),
    ],
)
def test_invalid_order_updates_get_400_and_are_recorded(
    order_sim, body: object, field: str
) -> None:
    sim, http, order_id = order_sim
    if isinstance(body, dict) and body.get("Id") == "{order}":
        body = {**body, "Id": order_id}
    before = sim.state.event_count()
    response = put(http, sim, order_id, "OrderStatusUpdate", body)
    assert response.status_code == 400
    assert response.json()["Message"] == "The request is invalid"
    assert field in response.json()["ModelState"]
    assert sim.state.event_count() == before
    record = sim.state.updates(order_id)[-1]
    assert (record.verdict, record.http_status, record.body) == ("invalid", 400, body)


@pytest.mark.parametrize(
    "items",
    [[{"Sku": "NOT-A-LINE", "Status": 2}], [{"Status": 2}], [], [{"Sku": "{sku}", "Quantity": -1}]],
)
def test_invalid_item_updates_get_400(order_sim, items: list[dict[str, object]]) -> None:
    sim, http, order_id = order_sim
    sku = sim.state.order(order_id)["items"][0]["sku"]
    items = [{k: (sku if v == "{sku}" else v) for k, v in item.items()} for item in items]
    response = put(
        http, sim, order_id, "ItemStatusUpdate", {"Id": order_id, "ItemInformation": items}
    )
    assert response.status_code == 400
    assert "ItemInformation" in "".join(response.json()["ModelState"])


def test_a_body_that_is_not_json_gets_400(order_sim) -> None:
    sim, http, order_id = order_sim
    url = f"{sim.base_url}/Suppliers({SUPPLIER})/Orders({order_id})/OrderStatusUpdate"
    response = http.put(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert sim.state.updates(order_id)[-1].verdict == "invalid"


def test_an_unknown_order_gets_404_not_found(order_sim) -> None:
    sim, http, _ = order_sim
    unknown = "0b05f9fb-1210-4494-b654-d051948716b4"
    for kind in ("OrderStatusUpdate", "ItemStatusUpdate"):
        response = put(http, sim, unknown, kind, {"Id": unknown, "Status": 1})
        assert response.status_code == 404
        assert response.json() == {"Message": "Not found"}
    assert [u.verdict for u in sim.state.updates(unknown)] == ["not-found", "not-found"]


def inspected(sim: SimulatorServer, order_id: str) -> list[tuple[str, list[str]]]:
    """Verdict and reasons of every update of an order, read through the inspection API."""
    response = httpx.get(f"{sim.control_url}/updates", params={"order_id": order_id})
    assert response.status_code == 200
    return [(u["verdict"], u["problems"]) for u in response.json()["updates"]]


def two_line_order(sim: SimulatorServer, quantity: int = 3) -> tuple[str, str, str]:
    """Add an order with lines ``TST-1`` (``quantity`` units) and ``TST-2`` (2 units)."""
    order = OrderGenerator(seed=len(sim.state.order_ids()) + 100).order(SUPPLIER)
    template = order.lines[0]
    lines = (
        replace(template, sku="TST-1", quantity=quantity),
        replace(template, sku="TST-2", catalog_id=str(uuid.uuid4()), quantity=2),
    )
    order_id = str(uuid.uuid4())
    sim.state.add_order(replace(order, order_id=order_id, lines=lines))
    return order_id, "TST-1", "TST-2"


Step = tuple[str, dict[str, object] | list[dict[str, object]]]
"""An update to send: its endpoint, and the order's fields or the items' list."""


def order_step(status: int | str, **fields: object) -> Step:
    return "OrderStatusUpdate", {"Status": status, **fields}


def item_step(*items: dict[str, object]) -> Step:
    return "ItemStatusUpdate", list(items)


def send(sim: SimulatorServer, http: httpx.Client, order_id: str, steps: list[Step]) -> None:
    for kind, fields in steps:
        if isinstance(fields, dict):
            body: dict[str, object] = {"Id": order_id, **fields}
        else:
            body = {"Id": order_id, "ItemInformation": fields}
        response = put(http, sim, order_id, kind, body)
        assert response.status_code == 202, response.text


ACK = order_step(1)

# Each case: the updates (the last of them outside the lifecycle) and the reason strict mode
# gives for the last one. TST-1 has 3 units ordered, TST-2 has 2.
FLAGGED_CASES: dict[str, tuple[list[Step], str]] = {
    "error-to-ordered": ([order_step(4, Message="x"), ACK], "order Error -> Ordered leaves"),
    "not-available-to-ordered": ([order_step(5), ACK], "order NotAvailable -> Ordered leaves"),
    "other-to-shipped": (
        [order_step(8, Message="x"), order_step(2, TrackingInfo="T1")],
        "order Other -> Shipped leaves",
    ),
    "shipped-to-ordered": (
        [ACK, order_step(2, TrackingInfo="T1"), ACK],
        "order Shipped -> Ordered leaves",
    ),
    "cancelled-to-shipped": (
        [ACK, order_step(7), order_step(2, TrackingInfo="T1")],
        "order Cancelled -> Shipped leaves",
    ),
    "second-acknowledgement": ([ACK, ACK], "order Ordered -> Ordered repeats a status"),
    "second-backorder-of-an-item": (
        [ACK, item_step({"Sku": "TST-2", "Status": 3}), item_step({"Sku": "TST-2", "Status": 3})],
        "item TST-2 BackOrdered -> BackOrdered repeats a status",
    ),
    "shipped-again-without-new-tracking": (
        [ACK, order_step(2, TrackingInfo="T1"), order_step(2, TrackingInfo="T1")],
        "order Shipped -> Shipped repeats the status without a new tracking number",
    ),
    "shipped-short-of-the-quantity": (
        [ACK, item_step({"Sku": "TST-1", "Status": 2, "Quantity": 2, "TrackingInfo": "T1"})],
        "item TST-1 sent as Shipped with 2 of 3 units shipped",
    ),
    "shipped-short-after-a-partial-shipment": (
        [
            ACK,
            item_step({"Sku": "TST-1", "Status": 6, "Quantity": 1, "TrackingInfo": "T1"}),
            item_step({"Sku": "TST-1", "Status": 2, "Quantity": 1, "TrackingInfo": "T1,T2"}),
        ],
        "item TST-1 sent as Shipped with 2 of 3 units shipped",
    ),
    "partially-shipped-reaching-the-full-quantity": (
        [
            ACK,
            item_step({"Sku": "TST-1", "Status": 6, "Quantity": 1, "TrackingInfo": "T1"}),
            item_step({"Sku": "TST-1", "Status": 6, "Quantity": 2, "TrackingInfo": "T1,T2"}),
        ],
        "item TST-1 PartiallyShipped brings 3 of 3 units shipped",
    ),
    "partially-shipped-without-a-quantity": (
        [ACK, item_step({"Sku": "TST-1", "Status": 6, "TrackingInfo": "T1"})],
        "item TST-1 PartiallyShipped without a Quantity",
    ),
    "partially-shipped-as-a-whole-order": (
        [ACK, order_step(6, TrackingInfo="T1")],
        "order PartiallyShipped cannot say which units shipped",
    ),
    "more-units-than-ordered": (
        [ACK, item_step({"Sku": "TST-2", "Status": 2, "Quantity": 3, "TrackingInfo": "T1"})],
        "item TST-2 ships 3 more units than the 2 ordered (0 shipped before)",
    ),
    "order-tracking-dropped": (
        [ACK, order_step(2, TrackingInfo="T1,T2"), order_step(2, TrackingInfo="T2,T3")],
        "order TrackingInfo drops T1 sent before",
    ),
    "item-tracking-dropped": (
        [
            ACK,
            item_step({"Sku": "TST-2", "Status": 2, "TrackingInfo": "A1,B2"}),
            item_step({"Sku": "TST-2", "Status": 2, "TrackingInfo": "B2,C3"}),
        ],
        "item TST-2 TrackingInfo drops A1 sent before",
    ),
}


@pytest.mark.parametrize("case", list(FLAGGED_CASES))
def test_strict_mode_flags_updates_outside_the_lifecycle(
    make_simulator: MakeSimulator, case: str
) -> None:
    steps, reason = FLAGGED_CASES[case]
    sim = make_simulator(strict=True)
    order_id, _, _ = two_line_order(sim)

    with client(sim) as http:
        send(sim, http, order_id, steps)

    verdicts = inspected(sim, order_id)
    assert [v for v, _ in verdicts[:-1]] == ["accepted"] * (len(steps) - 1), verdicts
    verdict, problems = verdicts[-1]
    assert verdict == "flagged"
    assert any(problem.startswith(reason) for problem in problems), problems


@pytest.mark.parametrize("case", list(FLAGGED_CASES))
def test_lenient_mode_accepts_what_strict_mode_flags(simulator: SimulatorServer, case: str) -> None:
    steps, _ = FLAGGED_CASES[case]
    order_id, _, _ = two_line_order(simulator)

    with client(simulator) as http:
        send(simulator, http, order_id, steps)

    assert inspected(simulator, order_id) == [("accepted", [])] * len(steps)


GOOD_PATHS: dict[str, list[Step]] = {
    "acknowledged-then-shipped": [ACK, order_step(2, TrackingInfo="T1", ShippingProvider="UPS")],
    "acknowledged-then-cancelled": [ACK, order_step(7, Message="Customer cancelled")],
    "back-ordered-before-and-after-the-acknowledgement": [
        order_step(3),
        ACK,
        order_step(3, Message="Awaiting stock"),
        ACK,
        order_step(2, TrackingInfo="T1"),
    ],
    "shipped-in-parts-then-more-tracking": [
        ACK,
        item_step({"Sku": "TST-1", "Status": 6, "Quantity": 1, "TrackingInfo": "A1"}),
        item_step(
            {"Sku": "TST-1", "Status": 6, "Quantity": 1, "TrackingInfo": "A1,B2"},
            {"Sku": "TST-2", "Status": 2, "TrackingInfo": "B2"},
        ),
        item_step({"Sku": "TST-1", "Status": 2, "Quantity": 1, "TrackingInfo": "A1,B2,C3"}),
        item_step({"Sku": "TST-1", "Status": 2, "Quantity": 0, "TrackingInfo": "A1,B2,C3,D4"}),
        order_step(2, TrackingInfo="A1,B2,C3,D4,E5"),
    ],
    "one-line-back-ordered-the-other-shipped": [
        ACK,
        item_step({"Sku": "TST-1", "Status": 3}, {"Sku": "TST-2", "Status": 2, "Quantity": 2}),
        item_step({"Sku": "TST-1", "Status": 1}),
        item_step({"Sku": "TST-1", "Status": 2, "TrackingInfo": "T2"}),
    ],
    "one-line-cancelled-the-other-shipped": [
        ACK,
        item_step(
            {"Sku": "TST-1", "Status": 7}, {"Sku": "TST-2", "Status": 2, "TrackingInfo": "T"}
        ),
    ],
    "not-available-then-cancelled": [order_step(5, Message="Discontinued"), order_step(7)],
    "error-straight-away": [order_step(4, Message="Error: product not found")],
    # Every order is acknowledged first, so these come after Ordered (CONTRACT.md section 6).
    "ordered-then-not-available": [ACK, order_step(5)],
    "ordered-then-error": [ACK, order_step(4, Message="x")],
    "ordered-then-other": [ACK, order_step(8, Message="x")],
    "back-ordered-then-shipped": [ACK, order_step(3), order_step(2, TrackingInfo="T1")],
    "back-ordered-item-then-partly-shipped": [
        ACK,
        item_step({"Sku": "TST-1", "Status": 3}),
        item_step({"Sku": "TST-1", "Status": 6, "Quantity": 1, "TrackingInfo": "T1"}),
    ],
    "other-straight-away": [order_step(8, Message="Held for address verification")],
}


def test_strict_mode_accepts_every_documented_path(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(strict=True)
    orders = {name: two_line_order(sim)[0] for name in GOOD_PATHS}

    with client(sim) as http:
        for name, steps in GOOD_PATHS.items():
            send(sim, http, orders[name], steps)

    for name, order_id in orders.items():
        assert inspected(sim, order_id) == [("accepted", [])] * len(GOOD_PATHS[name]), name
    shipped = sim.state.order(orders["shipped-in-parts-then-more-tracking"])
    assert shipped["status"] == "Shipped"
    assert [i["shipped_quantity"] for i in shipped["items"]] == [3, 2]
    assert shipped["tracking_numbers"] == ["A1", "B2", "C3", "D4", "E5"]
    assert sim.state.order(orders["one-line-cancelled-the-other-shipped"])["status"] == "Shipped"


def test_an_item_update_moves_every_line_of_a_repeated_sku(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(strict=True, repeat_sku_rate=1.0)
    order = sim.state.add_orders(1)[0]
    sku = order.lines[-1].sku
    repeated = [line for line in order.lines if line.sku == sku]
    assert len(repeated) == 2
    units = sum(line.quantity for line in repeated)

    with client(sim) as http:
        send(sim, http, order.order_id, [ACK])
        if units > 1:
            part = {"Sku": sku, "Status": 6, "Quantity": units - 1, "TrackingInfo": "P1"}
            send(sim, http, order.order_id, [item_step(part)])
        last = {"Sku": sku, "Status": 2, "Quantity": 1, "TrackingInfo": "P1,P2"}
        send(sim, http, order.order_id, [item_step(last)])

    assert {v for v, _ in inspected(sim, order.order_id)} == {"accepted"}
    lines = [i for i in sim.state.order(order.order_id)["items"] if i["sku"] == sku]
    assert [i["status"] for i in lines] == ["Shipped", "Shipped"]
    assert [i["shipped_quantity"] for i in lines] == [line.quantity for line in repeated]
    assert all(i["tracking_numbers"] == ["P1", "P2"] for i in lines)


def test_strict_reject_answers_400_and_adds_no_entry(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(strict=True, strict_reject=True)
    order_id, _, _ = two_line_order(sim)
    with client(sim) as http:
        assert (
            put(http, sim, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": 7}).status_code
            == 202
        )
        events = sim.state.event_count()
        response = put(http, sim, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": 1})
    assert response.status_code == 400
    assert "Cancelled -> Ordered" in str(response.json()["ModelState"])
    assert sim.state.event_count() == events
    assert sim.state.updates(order_id)[-1].verdict == "rejected"
    assert sim.state.order(order_id)["status"] == "Cancelled"


# ---- fault knobs ----------------------------------------------------------------------


def test_a_default_simulator_serving_hundreds_of_requests_injects_no_fault(
    simulator: SimulatorServer,
) -> None:
    orders = simulator.state.add_orders(120)
    urls = [feed_url(simulator)]
    urls += [f"{feed_url(simulator)}/Pages({page})" for page in simulator.state.page_ids()]
    statuses: list[int] = []
    with client(simulator) as http:
        for _ in range(60):
            for url in urls:
                response = http.get(url)
                statuses.append(response.status_code)
                assert response.headers["content-type"] == "application/atom+xml"
                assert not any(
                    h.startswith("x-ratelimit") or h == "retry-after" for h in response.headers
                )
                body = response.content
                assert b'xmlns="http://www.w3.org/2005/Atom"' in body
                assert b"https://www.w3.org/2001/XMLSchema-instance" not in body
                assert b"gift-wrap" not in body
        for order in orders[:60]:
            ack = {"Id": order.order_id, "Status": 1}
            response = put(http, simulator, order.order_id, "OrderStatusUpdate", ack)
            statuses.append(response.status_code)
        ids = all_entry_ids(http, simulator)

    assert len(statuses) == 300 and set(statuses) == {200, 202}
    assert len(ids) == len(set(ids)) == 180
    assert all(GUID.match(i.removeprefix("urn:uuid:")) for i in ids)
    summary = httpx.get(simulator.control_url).json()
    assert summary["stats"] == {}, "no fault of any kind fired"
    assert summary["faults"] == Faults().as_dict()


def rate_headers(response: httpx.Response) -> tuple[int, int, int | None]:
    """Remaining, ResetSeconds and Retry-After (None when absent) of a response."""
    retry_after = response.headers.get("retry-after")
    return (
        int(response.headers["x-ratelimit-remaining"]),
        int(response.headers["x-ratelimit-resetseconds"]),
        None if retry_after is None else int(retry_after),
    )


def test_an_injected_429_spends_the_window_and_its_headers_say_so(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(faults=Faults(rate_limit_every=3, retry_after_seconds=1))
    with client(sim) as http:
        responses = [http.get(feed_url(sim)) for _ in range(4)]
        remaining, reset_seconds, retry_after = rate_headers(responses[3])
        time.sleep(retry_after or 0)
        after_the_wait = http.get(feed_url(sim))

    assert [r.status_code for r in responses] == [200, 200, 429, 429]
    for limited in responses[2:]:
        assert limited.text == "rate limit exceeded"
        assert limited.headers["content-type"].startswith("text/plain")
        remaining, reset_seconds, retry_after = rate_headers(limited)
        assert remaining == 0
        assert retry_after == reset_seconds and 0 <= reset_seconds <= 1
    assert [rate_headers(r)[0] for r in responses[:2]] == [999, 998]
    assert all(rate_headers(r)[2] is None for r in responses[:2])
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "1000"
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", response.headers["x-ratelimit-reset"]
        )
    assert after_the_wait.status_code == 200
    assert rate_headers(after_the_wait)[0] == 999, "a fresh window after the reset"
    assert httpx.get(sim.control_url).json()["stats"]["rate_limited"] == 2


def test_an_injected_429_with_no_wait_is_followed_by_a_fresh_window(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(faults=Faults(rate_limit_every=3, retry_after_seconds=0))
    with client(sim) as http:
        responses = [http.get(feed_url(sim)) for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
    assert [rate_headers(r) for r in responses] == [
        (999, 2, None),
        (998, 2, None),
        (0, 0, 0),
        (999, 2, None),
        (998, 2, None),
        (0, 0, 0),
    ]


def test_the_enforcing_mode_counts_requests_per_window(make_simulator: MakeSimulator) -> None:
    faults = Faults(rate_limit_enforce=True, rate_limit_limit=3, rate_limit_window_seconds=2)
    sim = make_simulator(faults=faults)
    with client(sim) as http:
        allowed = [http.get(feed_url(sim)) for _ in range(3)]
        refused = [http.get(feed_url(sim)) for _ in range(2)]
        _, reset_seconds, retry_after = rate_headers(refused[-1])
        time.sleep(retry_after or 0)
        next_window = http.get(feed_url(sim))

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [rate_headers(r)[0] for r in allowed] == [2, 1, 0]
    assert all(rate_headers(r)[2] is None for r in allowed)
    for response in refused:
        assert response.status_code == 429 and response.text == "rate limit exceeded"
        remaining, reset_seconds, retry_after = rate_headers(response)
        assert remaining == 0 and retry_after == reset_seconds and 1 <= reset_seconds <= 2
        assert response.headers["x-ratelimit-limit"] == "3"
    assert next_window.status_code == 200
    assert rate_headers(next_window)[0] == 2
    assert httpx.get(sim.control_url).json()["stats"] == {"rate_limited": 2}


def test_rate_limit_headers_alone_never_refuse(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(rate_limit_headers=True))
    with client(sim) as http:
        responses = [http.get(feed_url(sim)) for _ in range(12)]
    assert {r.status_code for r in responses} == {200}
    remaining = [rate_headers(r)[0] for r in responses]
    assert remaining == list(range(999, 987, -1))
    assert all(0 <= rate_headers(r)[1] <= 2 and rate_headers(r)[2] is None for r in responses)
    assert httpx.get(sim.control_url).json()["stats"] == {}


def test_random_faults_follow_the_seed(make_simulator: MakeSimulator) -> None:
    def statuses(seed: int) -> list[int]:
        faults = Faults(
            seed=seed, rate_limit_rate=0.3, retry_after_seconds=0, server_error_rate=0.2
        )
        sim = make_simulator(faults=faults)
        with client(sim) as http:
            return [http.get(feed_url(sim)).status_code for _ in range(30)]

    first = statuses(5)
    assert first == statuses(5)
    assert {429, 503, 200} <= set(first)


def test_server_errors_fire_when_on(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(server_error_every=2, server_error_status=500))
    with client(sim) as http:
        codes = [http.get(feed_url(sim)).status_code for _ in range(4)]
    assert codes == [200, 500, 200, 500]


def test_slow_responses_wait_when_on(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(slow_rate=1.0, slow_seconds=0.3))
    with client(sim) as http:
        started = time.perf_counter()
        assert http.get(feed_url(sim)).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_connections_are_dropped_at_the_configured_rate(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(drop_rate=0.4, seed=2))
    sim.state.add_orders(10)
    outcomes: list[int | str] = []
    with client(sim) as http:
        for _ in range(30):
            try:
                outcomes.append(http.get(feed_url(sim)).status_code)
            except httpx.RemoteProtocolError:
                outcomes.append("dropped")
    dropped = outcomes.count("dropped")
    assert 4 <= dropped <= 20 and outcomes.count(200) == 30 - dropped
    assert httpx.get(sim.control_url).json()["stats"] == {"dropped": dropped}


def test_a_dropped_connection_gives_the_client_a_protocol_error(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(faults=Faults(drop_every=2))
    sim.state.add_orders(10)
    with client(sim) as http:
        assert http.get(feed_url(sim)).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(feed_url(sim))
        assert http.get(feed_url(sim)).status_code == 200
    assert sim.state.summary()["stats"]["dropped"] == 1


def test_the_token_endpoint_is_faulted_only_when_asked(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(server_error_every=1))
    assert grant(sim).status_code == 200
    sim.state.set_faults({"token_endpoint_faults": True})
    assert grant(sim).status_code == 503


def test_duplicate_delivery_resends_an_order_under_a_new_entry_id(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(faults=Faults(duplicate_order_rate=1.0))
    orders = sim.state.add_orders(30)
    with client(sim) as http:
        pages = walk_back(http, feed_url(sim))
    entries = [e for _, _, root in pages for e in root.findall(f"{ATOM}entry")]
    assert len(entries) == 60
    assert len({e.findtext(f"{ATOM}id") for e in entries}) == 60
    by_order: dict[str, list[bytes]] = {}
    for e in entries:
        created = e.find(f"{ATOM}content/{DS}order-created")
        by_order.setdefault(created.findtext(f"{DS}order-id"), []).append(etree.tostring(created))
    assert set(by_order) == {o.order_id for o in orders}
    assert all(len(v) == 2 and v[0] == v[1] for v in by_order.values())


def test_a_repeated_entry_appears_again_on_the_next_page(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(page_size=10, faults=Faults(repeat_entry_rate=1.0))
    sim.state.add_orders(12)
    with client(sim) as http:
        current, archive = walk_back(http, feed_url(sim))
    newest_archived = entry_ids(archive[2])[0]
    assert entry_ids(current[2])[-1] == newest_archived
    assert len(entry_ids(current[2])) == 3


def test_feed_variations_of_section_12_fire_when_on(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(
        faults=Faults(
            https_atom_namespace=True,
            https_xsi_namespace=True,
            json_content_type=True,
            non_guid_entry_id_rate=1.0,
            unknown_elements=True,
            self_closing_empty=True,
        )
    )
    order = OrderGenerator(seed=1).order(SUPPLIER)
    sim.state.add_order(replace(order, shipping_address=replace(order.shipping_address, notes="")))
    with client(sim) as http:
        response = http.get(feed_url(sim))
    assert response.headers["content-type"].startswith("application/json")
    body = response.content
    assert b'<feed xmlns="https://www.w3.org/2005/Atom">' in body
    assert b'xmlns:i="https://www.w3.org/2001/XMLSchema-instance"' in body
    assert b"<notes />" in body
    root = etree.fromstring(body, SAFE_PARSER)
    entry_id = root.findtext(f"{ATOM_HTTPS}entry/{ATOM_HTTPS}id")
    assert entry_id.startswith("urn:uuid:") and not GUID.match(entry_id.removeprefix("urn:uuid:"))
    created = root.find(f"{ATOM_HTTPS}entry/{ATOM_HTTPS}content/{DS}order-created")
    assert created.find(f"{DS}gift-wrap") is not None
    assert created.find(f"{DS}shipping-customer/{DS}loyalty-tier") is not None


def test_empty_elements_are_written_open_and_closed_by_default(simulator: SimulatorServer) -> None:
    order = OrderGenerator(seed=1).order(SUPPLIER)
    simulator.state.add_order(
        replace(order, shipping_address=replace(order.shipping_address, notes=""))
    )
    with client(simulator) as http:
        assert b"<notes></notes>" in http.get(feed_url(simulator)).content


def test_fault_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(drop_rate=2)
    with pytest.raises(ValueError, match="not a fault knob"):
        Faults().changed({"explode": True})
    assert Faults().changed({"rate_limit_every": "4", "json_content_type": "on"}) == Faults(
        rate_limit_every=4, json_content_type=True
    )


# ---- the inspection and control API --------------------------------------------------


def test_the_control_api_creates_orders_and_reports_updates(simulator: SimulatorServer) -> None:
    control = simulator.control_url
    created = httpx.post(f"{control}/orders", json={"count": 3})
    assert created.status_code == 201
    order_ids = created.json()["order_ids"]
    assert len(order_ids) == 3

    order_id = order_ids[0]
    with client(simulator) as http:
        put(http, simulator, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": 1})
        put(http, simulator, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": 42})

    orders = httpx.get(f"{control}/orders").json()["orders"]
    assert {o["order_id"] for o in orders} == set(order_ids)
    assert next(o for o in orders if o["order_id"] == order_id)["status"] == "Ordered"

    updates = httpx.get(f"{control}/updates", params={"order_id": order_id}).json()["updates"]
    assert [(u["verdict"], u["http_status"]) for u in updates] == [
        ("accepted", 202),
        ("invalid", 400),
    ]
    assert updates[0]["body"] == {"Id": order_id, "Status": 1}
    assert updates[0]["entry_id"].startswith("urn:uuid:")

    one = httpx.get(f"{control}/orders/{order_id}").json()
    assert one["status"] == "Ordered" and len(one["updates"]) == 2
    assert httpx.get(f"{control}/orders/nope").status_code == 404

    summary = httpx.get(control).json()
    assert summary["suppliers"][str(SUPPLIER)]["events"] == 4
    assert summary["updates"] == 2


def test_the_control_api_sets_faults_and_resends_orders(simulator: SimulatorServer) -> None:
    control = simulator.control_url
    changed = httpx.patch(f"{control}/faults", json={"rate_limit_every": 1})
    assert changed.status_code == 200 and changed.json()["rate_limit_every"] == 1
    with client(simulator) as http:
        assert http.get(feed_url(simulator)).status_code == 429
        assert httpx.get(control).status_code == 200, "the control API is never faulted"
        assert httpx.patch(f"{control}/faults", json={"nope": 1}).status_code == 400
        httpx.patch(f"{control}/faults", json={"rate_limit_every": 0})

        order_id = simulator.state.add_orders(1)[0].order_id
        resent = httpx.post(f"{control}/orders/{order_id}/resend")
        assert resent.status_code == 201
        ids = all_entry_ids(http, simulator)
    assert resent.json()["entry_id"] in ids and len(ids) == 2


# ---- running it ----------------------------------------------------------------------------------


def test_a_second_supplier_has_its_own_feed(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(other_supplier_ids=(60455,))
    sim.state.add_orders(2)
    sim.state.add_orders(3, supplier_id=60455)
    with client(sim) as http:
        assert len(entry_ids(parse_page(http.get(feed_url(sim)).content))) == 2
        other = parse_page(http.get(feed_url(sim, 60455)).content)
        assert len(entry_ids(other)) == 3
        order_id = sim.state.order_ids(60455)[0]
        assert (
            put(http, sim, order_id, "OrderStatusUpdate", {"Id": order_id, "Status": 1}).status_code
            == 404
        )


def test_the_command_line_options_parse() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--port", "0", "--events", "10", "--fault", "drop_rate=0.1", "--strict"]
    )
    assert (args.port, args.orders, args.fault, args.strict) == (0, 10, ["drop_rate=0.1"], True)


@pytest.mark.slow
def test_the_command_serves_until_stopped() -> None:
    command = [sys.executable, "-m", "dropship_pipeline.simulator", "--port", "0"]
    command += ["--orders", "60", "--token", "cli-token"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            lines = []
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("Inspection API"):
                    break
            base = next(line.split("=", 1)[1].strip() for line in lines if "API_URL=" in line)
            response = httpx.get(
                f"{base}/Suppliers({SUPPLIER})/Notifications",
                headers={"Authorization": "Bearer cli-token"},
            )
            assert response.status_code == 200
            assert len(entry_ids(parse_page(response.content))) == 10
        finally:
            process.terminate()
            assert process.wait(timeout=15) == 0
