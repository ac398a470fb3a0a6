"""The Atom parser: real pages, the documented variations, and hostile or broken input."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from dropship_pipeline.dropship import atom
from dropship_pipeline.dropship.atom import page_id_from_url, parse_links, parse_page
from dropship_pipeline.dropship.models import FeedPage
from dropship_pipeline.errors import FeedPageError

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://dropshiprc.iqmetrix.net/v1/Suppliers(14107)/Notifications"
PAGE_GUID = "477d9f09-2965-4452-8770-bfbc24328b21"
SELF_URL = f"{BASE}/Pages({PAGE_GUID})"
URL = f"{BASE}/Pages(6b1f0c3e-0000-4000-8000-000000000001)"

ATOM = "http://www.w3.org/2005/Atom"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DROPSHIP = "urn:iQmetrix:dropship"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def order_created(
    *,
    order_id: str = "abe6a66f-7009-4af4-b02d-3aaf08dba043",
    xsi: str = XSI,
    dropship: str | None = DROPSHIP,
    customer_notes: str = "<notes>Leave at the door</notes>",
    quantity: str = "2",
    extra: str = "",
) -> str:
    """An order-created element with every field set, in the service's alphabetical order."""
    default_ns = "" if dropship is None else f' xmlns="{dropship}"'
    return f"""<order-created xmlns:i="{xsi}"{default_ns}>
  <items>
    <order-item>
      <catalog-id>b85cb879-bb5f-4847-a856-8287de0a92d5</catalog-id>
      <description>Samsung Galaxy S4 Standard Battery</description>
      <quantity>{quantity}</quantity>
      <selling-price>39.99</selling-price>
      <sku>B00LAOKN4S</sku>
    </order-item>
    <order-item>
      <catalog-id>18e039de-f950-4d8e-a48a-d06e4db55a07</catalog-id>
      <description>Some Item</description>
      <quantity>1</quantity>
      <selling-price>100</selling-price>
      <sku>AB-JH0786-MI</sku>
    </order-item>
  </items>
  <order-id>{order_id}</order-id>
  <seller>
    <company-id>14146</company-id>
    <location-id>14223</location-id>
    <po-reference>TT101IN18</po-reference>
    <printable-id>7400009</printable-id>
  </seller>
  <ship-to-store>TRUE</ship-to-store>
  <shipping-address>
    <address-id>a08b0640-606a-41f0-901a-facaf50e75dd</address-id>
    <attention-to>Bob Eh</attention-to>
    <business-name>Eh Corp</business-name>
    <country>Canada</country>
    <country-code>CA</country-code>
    <locality>Yellowknife</locality>
    <notes>Ring twice</notes>
    <phone>867-555-0100</phone>
    <post-office-box-number>PO 12</post-office-box-number>
    <postal-code>X1A 3X7</postal-code>
    <region>Northwest Territories</region>
    <region-code>NT</region-code>
    <street-address-1>4702 Anderson-Thomson Blvd</street-address-1>
    <street-address-2>Unit 5</street-address-2>
    <type>Home</type>
  </shipping-address>
  <shipping-customer>
    <alternate-name>Bobby</alternate-name>
    <customer-id>659c2a38-d083-4421-9330-46d779702f85</customer-id>
    <family-name>Eh</family-name>
    <middle-name>Q</middle-name>
    {customer_notes}
    <primary-name>Bob</primary-name>
    <title>Mr</title>
    <type>Person</type>
  </shipping-customer>
  <shipping-entity-id>0</shipping-entity-id>
  <shipping-method>1716</shipping-method>
  <supplier-id>14107</supplier-id>{extra}
</order-created>"""


def status_updated(*, xsi: str = XSI, dropship: str = DROPSHIP) -> str:
    return f"""<order-status-updated xmlns:i="{xsi}" xmlns="{dropship}">
  <company-id>14066</company-id>
  <items>
    <item-information>
      <catalog-id>cec02f3f-22d7-4504-83a8-5afda2dfc1a0</catalog-id>
      <info i:nil="true"/>
      <message></message>
      <quantity>3</quantity>
      <reference-name i:nil="true"/>
      <shipping-provider>UPS</shipping-provider>
      <sku>9101AGAP6</sku>
      <status>Shipped</status>
      <tracking-info>1Z999,1Z998</tracking-info>
    </item-information>
    <item-information>
      <sku>OTHER-1</sku>
      <status>BackOrdered</status>
    </item-information>
  </items>
  <order-id>0ff6f9f7-9e31-4039-8365-ff5471dbee7e</order-id>
  <supplier-id>14107</supplier-id>
</order-status-updated>"""


def entry(
    content: str,
    *,
    entry_id: str = "urn:uuid:f01bbbda-c0b5-4a77-9563-5d62d3f8dc08",
    published: str = "2015-12-03T23:36:22Z",
) -> str:
    return f"""<entry>
  <id>{entry_id}</id>
  <title type="text">Dropship Order Created</title>
  <published>{published}</published>
  <updated>{published}</updated>
  <content type="application/xml">{content}</content>
</entry>"""


def feed(
    *entries: str,
    atom: str = ATOM,
    links: str | None = None,
    feed_id: str = f"urn:uuid:{PAGE_GUID}",
    prolog: str = '<?xml version="1.0" encoding="utf-8"?>\n',
) -> bytes:
    if links is None:
        links = (
            f'<link rel="current" href="{BASE}"/>\n'
            f'<link rel="self" href="{SELF_URL}"/>\n'
            f'<link rel="prev-archive" href="{BASE}/Pages(older)"/>\n'
            f'<link rel="next-archive" href="{BASE}/Pages(newer)"/>\n'
        )
    return (
        f'{prolog}<feed xmlns="{atom}">\n'
        f'<title type="text">Dropship Order Event Feed</title>\n<id>{feed_id}</id>\n'
        f"<updated>2017-08-04T21:57:25Z</updated>\n<author><name>iQmetrix</name></author>\n"
        f"{links}{''.join(entries)}</feed>"
    ).encode()


def without_raw_xml(page: FeedPage) -> FeedPage:
    """The page with every entry's raw XML blanked: namespace spellings show up only there."""
    entries = tuple(dataclasses.replace(e, content_xml="") for e in page.entries)
    return dataclasses.replace(page, entries=entries)


# ---- the real pages ------------------------------------------------------------------------


def test_the_current_fixture_page_reads_every_field_of_both_events() -> None:
    page = parse_page(fixture("seed_feed_current.xml"), URL)

    assert page.url == URL
    assert page.page_id == PAGE_GUID
    assert page.updated == datetime(2017, 8, 4, 21, 57, 25, tzinfo=UTC)
    assert page.links.self_url == SELF_URL
    assert page.links.current_url == BASE
    assert page.links.prev_archive_url is None
    assert page.links.next_archive_url is None
    assert [e.event_type for e in page.entries] == ["order-status-updated", "order-created"]

    status_entry, order_entry = page.entries
    assert status_entry.entry_id == "urn:uuid:659a9f09-0d1d-46da-8899-aff5ebd758b8"
    assert status_entry.title == "Dropship Order Status Updated"
    assert status_entry.published == datetime(2017, 8, 4, 21, 52, 33, tzinfo=UTC)
    assert status_entry.updated == status_entry.published
    assert status_entry.order is None
    update = status_entry.status_update
    assert update is not None
    assert status_entry.order_id == "0ff6f9f7-9e31-4039-8365-ff5471dbee7e"
    assert (update.supplier_id, update.company_id) == ("14107", "14066")
    (item,) = update.items
    assert item.sku == "9101AGAP6"
    assert item.catalog_id == "cec02f3f-22d7-4504-83a8-5afda2dfc1a0"
    assert item.status == "Shipped"
    assert item.quantity == 1
    assert item.tracking_info == "23923408863"
    assert item.shipping_provider == "UPS"
    assert item.info == "www.ups.com"
    assert item.message == ""

    assert order_entry.entry_id == "urn:uuid:f01bbbda-c0b5-4a77-9563-5d62d3f8dc08"
    assert order_entry.title == "Dropship Order Created"
    assert order_entry.published == datetime(2015, 12, 3, 23, 36, 22, tzinfo=UTC)
    assert order_entry.status_update is None
    order = order_entry.order
    assert order is not None
    assert order_entry.order_id == "abe6a66f-7009-4af4-b02d-3aaf08dba043"
    assert dataclasses.asdict(order) == {
        "order_id": "abe6a66f-7009-4af4-b02d-3aaf08dba043",
        "supplier_id": "14107",
        "seller_company_id": "14146",
        "seller_location_id": "14223",
        "po_reference": "TT101IN18",
        "printable_id": "7400009",
        "ship_to_store": False,
        "shipping_method": "1716",
        "shipping_entity_id": "0",
        "customer_id": "659c2a38-d083-4421-9330-46d779702f85",
        "customer_type": "Person",
        "title": "Ms",
        "primary_name": "Princess",
        "middle_name": None,
        "family_name": "Jasmine",
        "alternate_name": None,
        "customer_notes": "Interested in iPhone 6",
        "address_id": "a08b0640-606a-41f0-901a-facaf50e75dd",
        "address_type": "Home",
        "attention_to": None,
        "business_name": None,
        "street_address_1": "4702 Anderson-Thomson Blvd",
        "street_address_2": None,
        "post_office_box_number": None,
        "locality": "Yellowknife",
        "region": "Northwest Territories",
        "region_code": "NT",
        "postal_code": "X1A 3X7",
        "country": "Canada",
        "country_code": "CA",
        "phone": None,
        "address_notes": None,
        "lines": (
            {
                "line_number": 1,
                "sku": "B00LAOKN4S",
                "catalog_id": "b85cb879-bb5f-4847-a856-8287de0a92d5",
                "description": "Samsung Galaxy S4 Standard Battery",
                "quantity": 1,
                "selling_price": Decimal("39.99"),
            },
        ),
    }


def test_the_archive_fixture_page_reads_its_one_status_update() -> None:
    page = parse_page(fixture("seed_feed_archive.xml"), URL)

    assert page.page_id == PAGE_GUID
    (only,) = page.entries
    assert only.entry_id == "urn:uuid:dc43a5eb-b9dd-4dce-b2a2-39ecfef3c090"
    assert only.event_type == "order-status-updated"
    assert only.published == datetime(2017, 8, 4, 21, 57, 24, tzinfo=UTC)
    assert only.status_update is not None
    assert only.status_update.items[0].status == "PartiallyShipped"


def test_raw_entry_xml_is_kept_whole_and_parses_back_to_the_same_entry() -> None:
    page = parse_page(fixture("seed_feed_current.xml"), URL)

    for parsed in page.entries:
        raw = etree.fromstring(parsed.content_xml.encode())
        assert raw.tag == "{https://www.w3.org/2005/Atom}entry"
        assert parsed.entry_id in parsed.content_xml
        assert parsed.order_id is not None
        assert parsed.order_id in parsed.content_xml
        assert not parsed.content_xml.endswith("\n")


def test_raw_entry_xml_drops_the_indentation_but_no_whitespace_that_is_data() -> None:
    notes = '<notes xml:space="preserve">  <b/>  </notes>'
    content = order_created(customer_notes=notes).replace(
        "<description>Some Item</description>", "<description>  Some <i>odd</i> Item </description>"
    )
    page = parse_page(feed(entry(content)), URL)

    (parsed,) = page.entries
    assert "\n" not in parsed.content_xml
    assert "<description>  Some <i>odd</i> Item </description>" in parsed.content_xml
    assert notes in parsed.content_xml
    assert parsed.order is not None
    assert parsed.order.lines[1].description == "  Some "  # its text before the child element


def test_a_full_order_maps_every_field_and_numbers_its_lines_in_document_order() -> None:
    page = parse_page(feed(entry(order_created())), URL)

    order = page.entries[0].order
    assert order is not None
    assert order.ship_to_store is True
    assert order.customer_notes == "Leave at the door"
    assert order.address_notes == "Ring twice"
    assert (order.customer_type, order.address_type) == ("Person", "Home")
    assert (order.attention_to, order.business_name) == ("Bob Eh", "Eh Corp")
    assert (order.street_address_2, order.post_office_box_number) == ("Unit 5", "PO 12")
    assert (order.phone, order.alternate_name, order.middle_name) == ("867-555-0100", "Bobby", "Q")
    assert [(line.line_number, line.sku, line.quantity) for line in order.lines] == [
        (1, "B00LAOKN4S", 2),
        (2, "AB-JH0786-MI", 1),
    ]
    assert order.lines[1].selling_price == Decimal("100")
    assert page.links.prev_archive_url == f"{BASE}/Pages(older)"
    assert page.links.next_archive_url == f"{BASE}/Pages(newer)"


def test_a_status_update_reads_items_with_nil_empty_and_absent_fields() -> None:
    page = parse_page(feed(entry(status_updated())), URL)

    update = page.entries[0].status_update
    assert update is not None
    first, second = update.items
    assert (first.info, first.message, first.quantity) == (None, "", 3)
    assert first.tracking_info == "1Z999,1Z998"
    assert (second.sku, second.status, second.quantity, second.catalog_id) == (
        "OTHER-1",
        "BackOrdered",
        None,
        None,
    )


# ---- documented variations -----------------------------------------------------------------


def test_http_and_https_namespace_spellings_give_identical_results() -> None:
    https_atom = "https://www.w3.org/2005/Atom"
    https_xsi = "https://www.w3.org/2001/XMLSchema-instance"
    nil_notes = '<notes i:nil="true"/>'
    pages = [
        parse_page(
            feed(
                entry(order_created(xsi=xsi, customer_notes=nil_notes)),
                entry(status_updated(xsi=xsi), entry_id="urn:uuid:second"),
                atom=atom,
            ),
            URL,
        )
        for atom in (ATOM, https_atom)
        for xsi in (XSI, https_xsi)
    ]

    assert pages[0].entries[0].order is not None
    assert pages[0].entries[0].order.customer_notes is None
    assert pages[0].entries[1].status_update is not None
    assert pages[0].entries[1].status_update.items[0].info is None
    for other in pages[1:]:
        assert without_raw_xml(other) == without_raw_xml(pages[0])


def test_nil_is_read_in_either_spelling_whatever_the_entries_before_used() -> None:
    https_xsi = "https://www.w3.org/2001/XMLSchema-instance"
    both = f'<notes xmlns:s="{https_xsi}" i:nil="false" s:nil="true"/>'
    spellings = [XSI, https_xsi, https_xsi, XSI, XSI, https_xsi]
    entries = [
        entry(order_created(xsi=xsi, customer_notes='<notes i:nil="true"/>'), entry_id=f"e{n}")
        for n, xsi in enumerate(spellings)
    ]
    entries += [
        entry(order_created(xsi=xsi, customer_notes="<notes/>"), entry_id=f"empty-{n}")
        for n, xsi in enumerate(spellings)
    ]
    entries += [entry(order_created(customer_notes=both), entry_id="both")]

    notes = {
        parsed.entry_id: parsed.order.customer_notes
        for parsed in parse_page(feed(*entries), URL).entries
        if parsed.order is not None
    }

    assert notes == {
        **{f"e{n}": None for n in range(len(spellings))},
        **{f"empty-{n}": "" for n in range(len(spellings))},
        "both": None,  # nil when either spelling says so
    }


def test_dropship_content_without_any_namespace_reads_the_same() -> None:
    with_ns = parse_page(feed(entry(order_created())), URL)
    no_ns = parse_page(feed(entry(order_created(dropship=""))), URL)

    assert no_ns.entries[0].order == with_ns.entries[0].order


def test_nil_empty_and_self_closing_elements_are_none_empty_and_empty() -> None:
    variants = {
        '<notes i:nil="true"/>': None,
        '<notes i:nil=" true "></notes>': None,
        '<notes i:nil="false"/>': "",
        "<notes></notes>": "",
        "<notes/>": "",
        '<notes other="true"/>': "",
        "": None,
    }
    for element, expected in variants.items():
        page = parse_page(feed(entry(order_created(customer_notes=element))), URL)
        order = page.entries[0].order
        assert order is not None
        assert order.customer_notes == expected, element


def test_unknown_elements_anywhere_are_ignored() -> None:
    unknown = "<loyalty-tier>gold</loyalty-tier><notes-extra><notes>not mine</notes></notes-extra>"
    content = order_created(extra=unknown).replace("<seller>", "<seller><region>Elsewhere</region>")
    body = feed(entry(f"<future-hint>x</future-hint>{content}")).replace(
        b"<author>", b"<generator>tests</generator><author>"
    )

    page = parse_page(body, URL)

    order = page.entries[0].order
    assert order is not None
    assert order == parse_page(feed(entry(order_created())), URL).entries[0].order


def test_unknown_event_content_is_kept_as_an_entry_without_type() -> None:
    future = (
        '<order-refunded xmlns="urn:iQmetrix:dropship"><order-id>o-1</order-id></order-refunded>'
    )
    page = parse_page(feed(entry(future), entry(order_created(), entry_id="b")), URL)

    unknown, known = page.entries
    assert unknown.event_type is None
    assert unknown.order is None
    assert unknown.status_update is None
    assert unknown.order_id is None
    assert "order-refunded" in unknown.content_xml
    assert known.event_type == "order-created"


def test_an_entry_without_content_is_kept_without_type() -> None:
    body = feed(
        "<entry><id>urn:uuid:no-content</id><updated>2017-08-04T21:57:25Z</updated></entry>"
    )

    (only,) = parse_page(body, URL).entries

    assert (only.entry_id, only.event_type, only.title, only.published) == (
        "urn:uuid:no-content",
        None,
        None,
        None,
    )


def test_ids_are_opaque_strings_with_surrounding_whitespace_removed() -> None:
    odd_entry = "urn:uuid:gf456fd486-df4s56g-not-a-guid"
    odd_order = "ORDER #7 (not a guid)"
    body = feed(entry(order_created(order_id=f"\n  {odd_order}  "), entry_id=f" {odd_entry}\n"))

    (only,) = parse_page(body, URL).entries

    assert only.entry_id == odd_entry
    assert only.order_id == odd_order


def test_child_order_does_not_matter() -> None:
    def reversed_children(xml: str) -> str:
        element = etree.fromstring(xml)
        for parent in element.iter():
            # The order of the lines is data (line numbers); every other order is not.
            if not parent.tag.endswith("}items"):
                parent[:] = list(reversed(parent))
        return etree.tostring(element, encoding="unicode")

    ordered = parse_page(feed(entry(order_created())), URL)
    scrambled_entry = reversed_children(entry(order_created()))
    scrambled = parse_page(feed(scrambled_entry), URL)

    assert without_raw_xml(scrambled) == without_raw_xml(ordered)


def test_an_older_page_without_shipping_entity_id_reads_it_as_none() -> None:
    content = order_created().replace("<shipping-entity-id>0</shipping-entity-id>", "")

    order = parse_page(feed(entry(content)), URL).entries[0].order

    assert order is not None
    assert order.shipping_entity_id is None


def test_timestamps_with_fractions_and_offsets_become_utc() -> None:
    stamps = {
        "2017-08-04T21:57:24.1234567Z": datetime(2017, 8, 4, 21, 57, 24, 123456, tzinfo=UTC),
        "2017-08-04T23:57:24+02:00": datetime(2017, 8, 4, 21, 57, 24, tzinfo=UTC),
        "2017-08-04T21:57:24": datetime(2017, 8, 4, 21, 57, 24, tzinfo=UTC),
    }
    for text, expected in stamps.items():
        (only,) = parse_page(feed(entry(order_created(), published=text)), URL).entries
        assert only.published == expected
        assert only.published is not None
        assert only.published.utcoffset() is not None


def test_page_id_falls_back_to_the_feed_id_without_its_urn_prefix() -> None:
    links = f'<link rel="current" href="{BASE}"/>'

    page = parse_page(feed(links=links, feed_id=" urn:uuid:Page-Seven "), URL)

    assert page.page_id == "Page-Seven"
    assert page.links.self_url is None
    assert page.entries == ()


def test_relative_link_targets_are_resolved_against_the_page_url() -> None:
    links = '<link rel="self" href="Pages(abc)"/><link href="elsewhere"/>'

    page = parse_page(feed(links=links), f"{BASE}/Pages(old)")

    assert page.links.self_url == f"{BASE}/Pages(abc)"
    assert page.page_id == "abc"


def test_any_content_type_is_fine_because_only_bytes_are_read() -> None:
    latin1 = feed(
        entry(order_created().replace("Yellowknife", "Montréal")),
        prolog='<?xml version="1.0" encoding="iso-8859-1"?>\n',
    ).decode()

    page = parse_page(latin1.encode("iso-8859-1"), URL)

    order = page.entries[0].order
    assert order is not None
    assert order.locality == "Montréal"


# ---- hostile input -------------------------------------------------------------------------


def test_an_xxe_page_never_reads_the_local_file_and_fails_naming_the_url(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    payloads = [
        f'<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        f'<!DOCTYPE feed [<!ENTITY % xxe SYSTEM "file://{secret}"> %xxe;]>',
        f'<!DOCTYPE feed SYSTEM "file://{secret}">',
    ]
    for doctype in payloads:
        body = feed(
            entry(order_created(customer_notes="<notes>&xxe;</notes>")),
            prolog=f'<?xml version="1.0"?>\n{doctype}\n',
        )
        for parse in (parse_page, parse_links):
            with pytest.raises(FeedPageError) as caught:
                parse(body, URL)
            assert caught.value.url == URL
            assert URL in str(caught.value)
            assert "TOP-SECRET-VALUE" not in str(caught.value)


def test_a_dtd_hidden_from_the_byte_scan_is_still_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    doctype = f'<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    utf16 = f'<?xml version="1.0" encoding="utf-16"?>{doctype}<feed xmlns="{ATOM}"/>'
    after_comment = f'<!-- <tricky> -->{doctype}<feed xmlns="{ATOM}"><id>&xxe;</id></feed>'

    for body in (utf16.encode("utf-16"), after_comment.encode()):
        with pytest.raises(FeedPageError) as caught:
            parse_page(body, URL)
        assert "TOP-SECRET-VALUE" not in str(caught.value)


def test_a_billion_laughs_page_fails_fast() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    doctype = f"<!DOCTYPE feed [{''.join(entities)}]>"
    bodies = [
        feed(feed_id="&lol9;", prolog=doctype),
        f'<!-- x<y -->{doctype}<feed xmlns="{ATOM}"><id>&lol9;</id></feed>'.encode(),
    ]

    for body in bodies:
        started = time.perf_counter()
        with pytest.raises(FeedPageError):
            parse_page(body, URL)
        assert time.perf_counter() - started < 1.0


def test_a_truncated_page_fails_naming_the_url() -> None:
    body = fixture("seed_feed_current.xml")

    for cut in (0, 10, len(body) // 2, len(body) - 3):
        with pytest.raises(FeedPageError) as caught:
            parse_page(body[:cut], URL)
        assert caught.value.url == URL


def test_malformed_xml_fails_with_feed_page_error() -> None:
    for body in (
        b"not xml at all",
        b"<feed><entry></feed>",
        f'<feed xmlns="{ATOM}"><id>&undefined;</id></feed>'.encode(),
        b"\xff\xfe\x00",
    ):
        with pytest.raises(FeedPageError):
            parse_page(body, URL)


def test_a_root_that_is_not_an_atom_feed_is_refused() -> None:
    for body in (
        b"<feed><id>x</id></feed>",
        f'<rss xmlns="{ATOM}"/>'.encode(),
        b'<feed xmlns="http://www.w3.org/2005/Atom-not"/>',
    ):
        with pytest.raises(FeedPageError, match="not an Atom feed"):
            parse_page(body, URL)
        with pytest.raises(FeedPageError, match="not an Atom feed"):
            parse_links(body, URL)


def test_a_page_without_self_link_or_feed_id_is_refused() -> None:
    body = feed(links="", feed_id="  ")

    with pytest.raises(FeedPageError, match="no self link"):
        parse_page(body, URL)


# ---- unreadable entries name the entry -----------------------------------------------------


def test_an_entry_without_id_is_refused_by_position() -> None:
    body = feed(entry(order_created()), entry(order_created(), entry_id="   "))

    with pytest.raises(FeedPageError, match=r"entry 2 of the page has no <id>"):
        parse_page(body, URL)


def test_an_order_created_without_order_id_is_refused_naming_the_entry() -> None:
    content = order_created().replace(
        "<order-id>abe6a66f-7009-4af4-b02d-3aaf08dba043</order-id>", ""
    )

    with pytest.raises(FeedPageError, match=r"entry urn:uuid:f01bbbda.*no order-id"):
        parse_page(feed(entry(content)), URL)


def test_a_status_update_without_order_id_is_refused() -> None:
    content = status_updated().replace(
        "<order-id>0ff6f9f7-9e31-4039-8365-ff5471dbee7e</order-id>", '<order-id i:nil="true"/>'
    )

    with pytest.raises(FeedPageError, match="no order-id"):
        parse_page(feed(entry(content)), URL)


@pytest.mark.parametrize("quantity", ["two", "", "1.5", "1_000", "١", " "])
def test_a_bad_quantity_is_refused_naming_entry_and_line(quantity: str) -> None:
    body = feed(entry(order_created(quantity=quantity), entry_id="urn:uuid:bad-qty"))

    with pytest.raises(FeedPageError, match=r"entry urn:uuid:bad-qty: order-item 1: quantity"):
        parse_page(body, URL)


def test_signed_and_padded_numbers_are_read() -> None:
    content = order_created(quantity=" +3 ").replace(
        "<selling-price>39.99</selling-price>", "<selling-price> -0.50 </selling-price>"
    )

    order = parse_page(feed(entry(content)), URL).entries[0].order

    assert order is not None
    assert order.lines[0].quantity == 3
    assert order.lines[0].selling_price == Decimal("-0.50")


def test_the_largest_price_the_database_holds_is_read() -> None:
    content = order_created().replace(
        "<selling-price>39.99</selling-price>",
        "<selling-price>00012345678901234.5</selling-price>",
    )

    order = parse_page(feed(entry(content)), URL).entries[0].order

    assert order is not None
    assert order.lines[0].selling_price == Decimal("12345678901234.5")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<selling-price>39.99</selling-price>", "<selling-price>NaN</selling-price>", "price"),
        ("<selling-price>39.99</selling-price>", "<selling-price>1e3</selling-price>", "price"),
        (
            "<selling-price>39.99</selling-price>",
            "<selling-price>123456789012345.00</selling-price>",
            "out of range",
        ),
        ("<ship-to-store>TRUE</ship-to-store>", "<ship-to-store>yes</ship-to-store>", "store"),
        ("<ship-to-store>TRUE</ship-to-store>", "<ship-to-store/>", "ship-to-store"),
    ],
)
def test_unparsable_typed_values_are_refused(old: str, new: str, message: str) -> None:
    content = order_created().replace(old, new)

    with pytest.raises(FeedPageError, match=message):
        parse_page(feed(entry(content)), URL)


def test_an_unparsable_timestamp_is_refused_naming_the_entry() -> None:
    body = feed(entry(order_created(), published="yesterday", entry_id="urn:uuid:when"))

    with pytest.raises(FeedPageError, match=r"entry urn:uuid:when: published 'yesterday'"):
        parse_page(body, URL)


# ---- parse_links and page ids ---------------------------------------------------------------


def test_parse_links_returns_the_same_links_as_parse_page() -> None:
    bodies = [
        fixture("seed_feed_current.xml"),
        fixture("seed_feed_archive.xml"),
        feed(entry(order_created())),
        feed(),
    ]
    for body in bodies:
        assert parse_links(body, URL) == parse_page(body, URL).links


def test_parse_links_works_on_a_page_cut_off_after_the_links() -> None:
    body = feed(*(entry(order_created(), entry_id=f"e{n}") for n in range(60)))
    first_entry = body.index(b"<entry>")

    for cut in (first_entry + len(b"<entry>"), first_entry + 100, len(body) // 2):
        links = parse_links(body[:cut], URL)
        assert links == parse_page(body, URL).links
        assert links.prev_archive_url == f"{BASE}/Pages(older)"


def test_parse_links_finds_links_written_after_the_entries() -> None:
    links = (
        f'<link rel="self" href="{SELF_URL}"/>\n'
        f'<link rel="prev-archive" href="{BASE}/Pages(older)"/>\n'
    )
    entries = [entry(order_created(), entry_id=f"e{n}") for n in range(5)]
    body = feed(*entries, links="")
    body = body.replace(b"</feed>", links.encode() + b"</feed>")

    found = parse_links(body, URL)

    assert found.prev_archive_url == f"{BASE}/Pages(older)"
    assert found == parse_page(body, URL).links


def test_parse_links_needs_the_whole_page_when_no_prev_archive_precedes_the_entries() -> None:
    body = feed(entry(order_created()), links=f'<link rel="self" href="{SELF_URL}"/>\n')

    assert parse_links(body, URL).prev_archive_url is None
    # Cut off, it could still hold a prev-archive link further down: not taken for the oldest.
    with pytest.raises(FeedPageError):
        parse_links(body[: body.index(b"</entry>")], URL)


def test_parse_links_refuses_a_page_cut_off_before_any_entry() -> None:
    body = feed()

    with pytest.raises(FeedPageError):
        parse_links(body[: body.index(b'<link rel="self"') + 10], URL)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SELF_URL, PAGE_GUID),
        (f"{BASE}/Pages(not-a-guid-42)?x=1", "not-a-guid-42"),
        (f"{BASE}/Pages(%20abc%20)", "abc"),
        (BASE, None),
        (f"{BASE}/Pages()", None),
        ("", None),
    ],
)
def test_page_id_from_url_reads_the_id_inside_pages(url: str, expected: str | None) -> None:
    assert page_id_from_url(url) == expected


def test_the_parser_itself_refuses_external_resources_behind_the_dtd_check(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = f'<!DOCTYPE feed [<!ENTITY % x SYSTEM "file://{secret}"> %x;]><feed/>'.encode()

    with pytest.raises(atom._ExternalResourceRefused):
        etree.fromstring(body, atom._PARSER)
