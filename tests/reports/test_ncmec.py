"""The NCMEC CyberTipline adapter (reports.ncmec): the report XML, the ESP client against a
local fake of NCMEC's API, and sending a packet."""

from __future__ import annotations

import copy
import hashlib
import io
import threading
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction

from core.models import AuditEvent
from reports.builder import referral_document
from reports.models import Destination, ReferralPacket
from reports.ncmec import (
    CHILD_PORNOGRAPHY,
    CHILD_SEX_TRAFFICKING,
    NCMEC_ORDER,
    NCMEC_REPORT_ORDER,
    ONLINE_ENTICEMENT,
    TEXT_LIMIT,
    EspClient,
    EspError,
    NcmecConflict,
    NcmecNotConfigured,
    NcmecRefused,
    cybertipline_xml,
    ncmec_send,
    report_problems,
)
from reports.packets import packet_draft
from reports.storage import StoredPacketError

from .factories import decided_case, police, ready_packet
from .fake_esp import FakeEsp, validate_report

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHA256 = "ab" * 32
MD5 = "cd" * 16
PDQ = "ef" * 32

# What a build by the builder's old `ncmec_xml` looked like: the shape issue #17 reports.
OLD_STYLE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<report>
  <incidentSummary>
    <incidentType>Child Pornography (possession, manufacture, and distribution)</incidentType>
    <incidentDateTime>2026-01-01T10:00:00Z</incidentDateTime>
  </incidentSummary>
  <reporter><reportingPerson><email>safety@example.org</email></reportingPerson></reporter>
  <reportedPerson><espIdentifier>u1</espIdentifier><screenName></screenName></reportedPerson>
  <fileDetails><fileHash hashType="SHA256">abab</fileHash></fileDetails>
</report>
"""


def make_document(**changes: Any) -> dict[str, Any]:
    """A referral document of the shape `reports.builder.referral_document` returns."""
    document: dict[str, Any] = {
        "reference": "RP-000042",
        "generated_at": "2026-02-28T16:00:00Z",  # the approval time
        "priority": "urgent",
        "incident": {
            "summary": "Adult account grooming a child (synthetic).",
            "category": "grooming",
            "categories": ["grooming"],
            "occurred_at": "2026-02-20T08:30:00Z",
            "escalation_reason": None,
        },
        "reporting_organisation": {
            "name": "Example Platform Ltd",
            "contact_point": {
                "name": "Trust and Safety team",
                "email": "safety@example.org",
                "phone": "+44 20 7946 0000",
            },
        },
        "suspects": [
            {
                "source": "chat",
                "account_id": "acct-1",
                "username": "suspect_one",
                "display_name": "Suspect One",
                "email": "one@example.net",
                "phone": "+44 7700 900001",
                "ip_events": [
                    {"ip_address": "203.0.113.7", "port": 51000, "seen_at": "2026-02-20T08:00:00Z"}
                ],
                "countries": ["GB"],
                "account_created_at": "2025-12-01T00:00:00Z",
                "linked_accounts": ["chat:acct-9"],
            },
            {
                "source": "chat",
                "account_id": "acct-2",
                "username": "suspect_two",
                "display_name": None,
                "email": "",
                "phone": None,
                "ip_events": [],
                "countries": [],
                "account_created_at": None,
                "linked_accounts": [],
            },
        ],
        "items": [
            {
                "kind": "image",
                "source": "chat",
                "external_id": "msg-1",
                "received_at": "2026-02-20T08:31:00Z",
                "occurred_at": "2026-02-20T08:30:00Z",
                "url": "https://chat.example/m/1",
                "publicly_available": False,
                "viewed_by_provider": True,
                "file": {
                    "mime": "image/jpeg",
                    "size": 48213,
                    "original_file_name": "IMG_0001.jpg",
                    "hashes": {
                        "sha256": SHA256,
                        "md5": MD5,
                        "sha1": None,
                        "pdq": PDQ,
                        "pdq_quality": 92,
                    },
                },
                "matches": [
                    {
                        "list": "IWF hash list",
                        "provider": "iwf",
                        "algorithm": "pdq",
                        "distance": 12,
                        "provider_category": "A",
                    }
                ],
            },
            {
                "kind": "message",
                "source": "chat",
                "external_id": "msg-2",
                "received_at": "2026-02-19T10:00:00Z",
                "occurred_at": None,
                "publicly_available": None,
                "viewed_by_provider": False,
                "matches": [],
            },
        ],
    }
    for key, value in changes.items():
        document[key] = value
    return document


def with_incident(**changes: Any) -> dict[str, Any]:
    document = make_document()
    document["incident"] = {**document["incident"], **changes}
    return document


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 — our own output


def children(element: ET.Element | None) -> list[str]:
    assert element is not None
    return [child.tag for child in element]


class CybertiplineXmlTests:
    def test_the_children_of_report_follow_ncmecs_order_and_names(self) -> None:
        root = parse(cybertipline_xml(make_document(), now=NOW))
        assert root.tag == "report"
        assert children(root) == [
            "incidentSummary",
            "internetDetails",
            "reporter",
            "personOrUserReported",
            "additionalInfo",
        ]
        order = [NCMEC_REPORT_ORDER.index(tag) for tag in children(root)]
        assert order == sorted(order)
        assert children(root.find("incidentSummary")) == [
            "incidentType",
            "incidentDateTime",
            "incidentDateTimeDescription",
        ]
        assert children(root.find("reporter")) == ["reportingPerson", "companyTemplate"]
        assert children(root.find("reporter/reportingPerson")) == ["phone", "email"]
        assert children(root.find("personOrUserReported")) == [
            "personOrUserReportedPerson",
            "espIdentifier",
            "espService",
            "screenName",
            "displayName",
            "ipCaptureEvent",
            "estimatedLocation",
            "additionalInfo",
        ]
        assert children(root.find("personOrUserReported/ipCaptureEvent")) == [
            "ipAddress",
            "eventName",
            "dateTime",
            "port",
        ]
        assert report_problems(cybertipline_xml(make_document())) == []

    def test_every_container_follows_the_order_table(self) -> None:
        root = parse(cybertipline_xml(make_document(priority="immediate"), now=NOW))
        for element in root.iter():
            order = NCMEC_ORDER.get(element.tag)
            if order is None:
                assert len(element) == 0, element.tag
                continue
            positions = [order.index(child.tag) for child in element]
            assert positions == sorted(positions), element.tag

    def test_grooming_is_reported_as_online_enticement(self) -> None:
        root = parse(cybertipline_xml(make_document(), now=NOW))
        assert root.findtext("incidentSummary/incidentType") == ONLINE_ENTICEMENT
        assert root.find("incidentSummary/reportAnnotations") is None

    def test_sextortion_is_online_enticement_with_the_sextortion_annotation(self) -> None:
        document = with_incident(
            category="sextortion_coercion", categories=["sextortion_coercion", "grooming"]
        )
        root = parse(cybertipline_xml(document, now=NOW))
        summary = root.find("incidentSummary")
        assert summary is not None
        assert summary.findtext("incidentType") == ONLINE_ENTICEMENT
        assert children(summary.find("reportAnnotations")) == ["sextortion"]
        assert summary.findtext("reportAnnotations/sextortion") == "true"
        assert children(summary) == [
            "incidentType",
            "reportAnnotations",
            "incidentDateTime",
            "incidentDateTimeDescription",
        ]

    @pytest.mark.parametrize(
        ("category", "with_file", "expected"),
        [
            ("known_csam", True, CHILD_PORNOGRAPHY),
            ("new_csam", True, CHILD_PORNOGRAPHY),
            ("livestream", False, CHILD_PORNOGRAPHY),
            ("search_abuse", False, CHILD_PORNOGRAPHY),
            ("procurement_advertising", False, CHILD_SEX_TRAFFICKING),
            ("child_safety_risk", True, CHILD_PORNOGRAPHY),
            ("child_safety_risk", False, ONLINE_ENTICEMENT),
            ("not_illegal_on_face", True, CHILD_PORNOGRAPHY),
            (None, False, ONLINE_ENTICEMENT),
        ],
    )
    def test_the_incident_type_follows_the_harm_category(
        self, category: str | None, with_file: bool, expected: str
    ) -> None:
        document = with_incident(category=category, categories=[category] if category else [])
        if not with_file:
            for item in document["items"]:
                item.pop("file", None)
        root = parse(cybertipline_xml(document, now=NOW))
        assert root.findtext("incidentSummary/incidentType") == expected

    def test_an_unmapped_primary_category_defers_to_a_mapped_one(self) -> None:
        document = with_incident(category="child_safety_risk", categories=["grooming"])
        root = parse(cybertipline_xml(document, now=NOW))
        assert root.findtext("incidentSummary/incidentType") == ONLINE_ENTICEMENT

    def test_an_immediate_risk_escalates_to_high_priority_with_the_reason(self) -> None:
        document = with_incident(escalation_reason="Plans to meet the child tonight.")
        document["priority"] = "immediate"
        root = parse(cybertipline_xml(document, now=NOW))
        summary = root.find("incidentSummary")
        assert summary is not None
        assert summary.findtext("escalateToHighPriority") == "Plans to meet the child tonight."
        assert children(summary)[:3] == [
            "incidentType",
            "escalateToHighPriority",
            "incidentDateTime",
        ]

    def test_immediate_priority_escalates_even_without_a_written_reason(self) -> None:
        root = parse(cybertipline_xml(make_document(priority="immediate"), now=NOW))
        reason = root.findtext("incidentSummary/escalateToHighPriority")
        assert reason and "immediate risk" in reason

    def test_a_routine_report_is_not_escalated(self) -> None:
        root = parse(cybertipline_xml(make_document(priority="routine"), now=NOW))
        assert root.find("incidentSummary/escalateToHighPriority") is None

    def test_the_incident_time_is_the_incident_not_the_approval_time(self) -> None:
        root = parse(cybertipline_xml(make_document(), now=NOW))
        assert root.findtext("incidentSummary/incidentDateTime") == "2026-02-20T08:30:00Z"
        assert "2026-02-28T16:00:00" not in root.findtext("incidentSummary/incidentDateTime", "")

    def test_an_incident_time_in_the_future_becomes_the_time_of_reporting(self) -> None:
        document = with_incident(occurred_at=(NOW + timedelta(days=2)).isoformat())
        root = parse(cybertipline_xml(document, now=NOW))
        assert root.findtext("incidentSummary/incidentDateTime") == "2026-03-01T11:59:59Z"
        assert "later than the time of reporting" in root.findtext(
            "incidentSummary/incidentDateTimeDescription", ""
        )

    def test_without_an_incident_time_the_latest_item_time_is_used(self) -> None:
        document = with_incident(occurred_at=None)
        root = parse(cybertipline_xml(document, now=NOW))
        # msg-1 reached Safeguard at 08:31, after it occurred (08:30); msg-2 a day earlier.
        assert root.findtext("incidentSummary/incidentDateTime") == "2026-02-20T08:31:00Z"

    def test_only_the_first_suspect_is_the_person_reported_the_others_are_named(self) -> None:
        root = parse(cybertipline_xml(make_document(), now=NOW))
        assert len(root.findall("personOrUserReported")) == 1
        reported = root.find("personOrUserReported")
        assert reported is not None
        assert reported.findtext("espIdentifier") == "acct-1"
        assert reported.findtext("screenName") == "suspect_one"
        assert reported.findtext("displayName") == "Suspect One"
        assert reported.findtext("personOrUserReportedPerson/email") == "one@example.net"
        assert reported.findtext("personOrUserReportedPerson/phone") == "+44 7700 900001"
        assert reported.findtext("ipCaptureEvent/ipAddress") == "203.0.113.7"
        assert reported.findtext("ipCaptureEvent/port") == "51000"
        assert reported.findtext("estimatedLocation/countryCode") == "GB"
        assert "chat:acct-9" in reported.findtext("additionalInfo", "")
        assert "acct-2" not in ET.tostring(reported, encoding="unicode")
        info = root.findtext("additionalInfo", "")
        assert "chat:acct-2; username suspect_two" in info

    def test_no_empty_element_is_written_whatever_is_blank(self) -> None:
        blank = {
            "source": "",
            "account_id": "",
            "username": None,
            "display_name": "  ",
            "email": "",
            "phone": None,
            "ip_events": [{"ip_address": "not an ip", "port": None, "seen_at": None}],
            "countries": [],
            "account_created_at": None,
            "linked_accounts": [],
        }
        items = [
            {
                "kind": "message",
                "source": "chat",
                "external_id": "m",
                "received_at": "2026-02-20T08:31:00Z",
                "occurred_at": None,
                "url": " ",
                "publicly_available": None,
                "viewed_by_provider": False,
                "matches": [],
            }
        ]
        document = make_document(suspects=[blank], items=items)
        document["reporting_organisation"]["contact_point"]["phone"] = ""
        document["incident"]["summary"] = ""
        root = parse(cybertipline_xml(document, now=NOW))
        for element in root.iter():
            assert len(element) or (element.text or "").strip(), element.tag
        assert root.find("personOrUserReported") is None  # nothing known about the account
        assert root.find("internetDetails") is None  # no usable URL
        assert validate_report(cybertipline_xml(document)) == []

    def test_it_writes_none_of_the_elements_ncmec_rejected(self) -> None:
        xml = cybertipline_xml(make_document(), now=NOW)
        tags = {element.tag for element in parse(xml).iter()}
        assert not tags & {"fileDetails", "fileHash", "reportedPerson", "originalFileHash"}

    def test_hashes_and_file_facts_travel_as_text_in_additional_info(self) -> None:
        info = parse(cybertipline_xml(make_document(), now=NOW)).findtext("additionalInfo", "")
        assert f"originalFileHash MD5={MD5}, SHA256={SHA256}, PDQ={PDQ}" in info
        assert "image/jpeg, 48213 bytes, original name IMG_0001.jpg" in info
        assert "publicly available: no; viewed by Example Platform Ltd: yes" in info
        assert "matched hash list IWF hash list (iwf, pdq, distance 12, category A)" in info
        assert "Summary: Adult account grooming a child (synthetic)." in info
        assert "pdq_quality" not in info.lower() and "SHA1=" not in info

    def test_text_is_escaped_and_characters_xml_cannot_carry_are_dropped(self) -> None:
        document = with_incident(summary='He wrote <script>alert("x")</script> & \x07more')
        xml = cybertipline_xml(document, now=NOW)
        assert b"\x07" not in xml and b"<script>" not in xml
        info = parse(xml).findtext("additionalInfo", "")
        assert 'He wrote <script>alert("x")</script> & more' in info

    def test_additional_info_stays_within_ncmecs_limit_and_says_what_was_left_out(self) -> None:
        item = make_document()["items"][0]
        items = [{**copy.deepcopy(item), "external_id": f"msg-{n}"} for n in range(200)]
        info = parse(cybertipline_xml(make_document(items=items), now=NOW)).findtext(
            "additionalInfo", ""
        )
        assert len(info) <= TEXT_LIMIT
        assert "more item(s) in referral packet RP-000042; ask Example Platform Ltd" in info

    def test_a_document_without_a_contact_email_is_refused(self) -> None:
        document = make_document()
        document["reporting_organisation"]["contact_point"]["email"] = ""
        with pytest.raises(ValueError, match="SAFEGUARD_ORG_CONTACT_EMAIL"):
            cybertipline_xml(document, now=NOW)

    def test_the_old_builder_output_is_reported_as_unsendable(self) -> None:
        problems = report_problems(OLD_STYLE_XML)
        assert any("reportedPerson is not an element" in p for p in problems)
        assert any("fileDetails is not an element" in p for p in problems)


@pytest.fixture
def esp() -> Iterator[FakeEsp]:
    fake = FakeEsp().start()
    yield fake
    fake.stop()


def client_for_fake(esp: FakeEsp, **changes: Any) -> EspClient:
    values = {"base_url": esp.url, "username": esp.username, "password": esp.password}
    return EspClient(**{**values, **changes}, timeout=5)


def shuffled(xml: bytes) -> bytes:
    """The same report with the children of <report> in reverse order."""
    root = parse(xml)
    elements = list(root)
    for element in elements:
        root.remove(element)
    for element in reversed(elements):
        root.append(element)
    return ET.tostring(root, encoding="utf-8")


class FakeEspTests:
    def test_it_accepts_our_report(self, esp: FakeEsp) -> None:
        xml = cybertipline_xml(make_document(priority="immediate"))
        report_id = client_for_fake(esp).submit(xml)
        assert esp.open_reports[report_id] == xml

    def test_it_rejects_the_same_report_with_its_children_shuffled(self, esp: FakeEsp) -> None:
        with pytest.raises(EspError, match=r"responseCode 4100.*out of order"):
            client_for_fake(esp).submit(shuffled(cybertipline_xml(make_document())))
        assert esp.open_reports == {}

    @pytest.mark.parametrize(
        ("mutation", "message"),
        [
            ("empty", "Element <screenName> is empty"),
            ("second_person", "At most one <personOrUserReported>"),
            ("unknown", "Unknown element <fileDetails>"),
        ],
    )
    def test_it_rejects_what_ncmec_rejects(self, esp: FakeEsp, mutation: str, message: str) -> None:
        root = parse(cybertipline_xml(make_document()))
        reported = root.find("personOrUserReported")
        assert reported is not None
        if mutation == "empty":
            screen_name = reported.find("screenName")
            assert screen_name is not None
            screen_name.text = ""
        elif mutation == "second_person":
            root.insert(list(root).index(reported) + 1, copy.deepcopy(reported))
        else:
            ET.SubElement(root, "fileDetails").text = "x"
        with pytest.raises(EspError, match=message):
            client_for_fake(esp).submit(ET.tostring(root, encoding="utf-8"))

    def test_it_rejects_the_old_builder_output(self, esp: FakeEsp) -> None:
        with pytest.raises(EspError, match="Unknown element <reportedPerson>"):
            client_for_fake(esp).submit(OLD_STYLE_XML)


class EspClientTests:
    def test_submit_finish_and_status(self, esp: FakeEsp) -> None:
        client = client_for_fake(esp)
        xml = cybertipline_xml(make_document())
        report_id = client.submit(xml)
        assert report_id == "4564654"
        assert client.finish(report_id) == {"report_id": report_id, "file_ids": []}
        assert esp.finished == {report_id: xml}
        assert client.status()["responseCode"] == "0"
        submit = esp.calls[0]
        assert submit.route == "/submit" and submit.authorised
        assert submit.content_type == "text/xml; charset=utf-8"
        assert esp.calls[1].content_type == "application/x-www-form-urlencoded"

    def test_retract_withdraws_an_open_report(self, esp: FakeEsp) -> None:
        client = client_for_fake(esp)
        report_id = client.submit(cybertipline_xml(make_document()))
        client.retract(report_id)
        assert esp.retracted == {report_id} and esp.finished == {}

    def test_a_non_zero_response_code_raises_with_ncmecs_description(self, esp: FakeEsp) -> None:
        esp.refusals["/submit"] = ("4100", "Invalid element: reportedPerson")
        with pytest.raises(EspError) as raised:
            client_for_fake(esp).submit(b"<report/>")
        assert raised.value.response_code == "4100"
        assert "Invalid element: reportedPerson" in str(raised.value)

    def test_wrong_credentials_and_server_errors_raise(self, esp: FakeEsp) -> None:
        with pytest.raises(EspError, match="HTTP 401"):
            client_for_fake(esp, password="wrong").status()
        esp.http_errors["/finish"] = 500
        with pytest.raises(EspError, match=r"/finish failed.*HTTP 500"):
            client_for_fake(esp).finish("1")

    def test_no_answer_raises(self) -> None:
        with pytest.raises(EspError, match="no answer"):
            EspClient(base_url="http://127.0.0.1:9", username="u", password="p", timeout=2).status()

    def test_plain_http_is_refused_except_to_this_machine(self) -> None:
        with pytest.raises(NcmecNotConfigured, match="https"):
            EspClient(base_url="http://exttest.cybertip.org/ispws", username="u", password="p")

    def test_missing_credentials_are_named(self, settings: Any) -> None:
        settings.SAFEGUARD_NCMEC_USERNAME = ""
        settings.SAFEGUARD_NCMEC_PASSWORD = ""
        with pytest.raises(NcmecNotConfigured) as raised:
            EspClient.from_settings()
        assert "SAFEGUARD_NCMEC_USERNAME" in str(raised.value)
        assert "SAFEGUARD_NCMEC_PASSWORD" in str(raised.value)

    def test_the_environment_setting_chooses_the_endpoint(self, settings: Any) -> None:
        settings.SAFEGUARD_NCMEC_USERNAME = "u"
        settings.SAFEGUARD_NCMEC_PASSWORD = "p"
        settings.SAFEGUARD_NCMEC_ENVIRONMENT = "production"
        assert EspClient.from_settings().base_url == settings.SAFEGUARD_NCMEC_PRODUCTION_URL
        settings.SAFEGUARD_NCMEC_ENVIRONMENT = "staging"
        with pytest.raises(NcmecNotConfigured, match="SAFEGUARD_NCMEC_ENVIRONMENT"):
            EspClient.from_settings()


# --- Sending a packet -----------------------------------------------------------------------


@pytest.fixture
def ncmec_on(settings: Any, esp: FakeEsp) -> FakeEsp:
    settings.SAFEGUARD_NCMEC_ENABLED = True
    settings.SAFEGUARD_NCMEC_ENVIRONMENT = "test"
    settings.SAFEGUARD_NCMEC_TEST_URL = esp.url
    settings.SAFEGUARD_NCMEC_USERNAME = esp.username
    settings.SAFEGUARD_NCMEC_PASSWORD = esp.password
    return esp


def zip_path(packet: ReferralPacket) -> Path:
    return Path(django_settings.EVIDENCE_ROOT) / packet.file.name


def put_xml(packet: ReferralPacket, xml: bytes) -> None:
    """Put cybertipline.xml into the stored zip and record the zip's new SHA-256."""
    path = zip_path(packet)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["cybertipline.xml"] = xml
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
    path.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    ReferralPacket.objects.filter(pk=packet.pk).update(sha256=digest)
    packet.refresh_from_db()


def ncmec_destination(mode: str = "test") -> Destination:
    return Destination.objects.create(name="NCMEC", kind="ncmec", jurisdiction="US", mode=mode)


def ncmec_packet(
    moderator: Any, lead: Any, lead2: Any, callbacks: Any, mode: str = "test"
) -> ReferralPacket:
    """A built, approved packet for NCMEC whose zip holds `cybertipline_xml`'s report.

    Built for a police force, then pointed at NCMEC with the report added: the test does not
    depend on the builder's NCMEC branch, which is being switched to `cybertipline_xml`."""
    packet = ready_packet(moderator, lead, lead2, callbacks, police())
    ReferralPacket.objects.filter(pk=packet.pk).update(destination=ncmec_destination(mode))
    packet.refresh_from_db()
    put_xml(packet, cybertipline_xml(referral_document(packet)))
    return packet


def state(packet: ReferralPacket) -> tuple[Any, ...]:
    fresh = ReferralPacket.objects.get(pk=packet.pk)
    return (
        fresh.status,
        fresh.external_reference,
        fresh.submitted_at,
        fresh.submitted_by_id,
        fresh.submission_channel,
        fresh.acknowledged_at,
        fresh.error,
    )


def verbs(packet: ReferralPacket) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="reports.referralpacket", object_id=str(packet.pk)
        ).values_list("verb", flat=True)
    )


@pytest.mark.django_db
class NcmecSendTests:
    def test_a_ready_packet_is_submitted_finished_and_recorded(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        with zipfile.ZipFile(zip_path(packet)) as archive:
            signed_xml = archive.read("cybertipline.xml")

        sent = ncmec_send(packet=packet, lead=lead)

        assert ncmec_on.routes() == ["/submit", "/finish"]
        assert ncmec_on.calls[0].body == signed_xml  # what was approved is what is sent
        assert sent.status == ReferralPacket.Status.ACKNOWLEDGED
        assert sent.external_reference == "4564654"
        assert sent.submitted_by == lead and sent.submission_channel == "ncmec_api"
        assert sent.submitted_at is not None and sent.acknowledged_at == sent.submitted_at
        assert sent.error == ""
        assert {"packet.ncmec_submitted", "packet.acknowledged"} <= set(verbs(packet))
        event = AuditEvent.objects.get(verb="packet.ncmec_submitted")
        assert event.actor_id == lead.pk and event.data["report_id"] == "4564654"
        assert event.data["xml_sha256"] == hashlib.sha256(signed_xml).hexdigest()
        # The incident time is the latest item's, never the approval time.
        document = referral_document(packet)
        sent_time = parse(signed_xml).findtext("incidentSummary/incidentDateTime")
        occurred = document["incident"]["occurred_at"]
        assert occurred is not None
        # Seconds only, and an item that arrived in the last second is clamped to now - 1 s.
        gap = datetime.fromisoformat(occurred) - datetime.fromisoformat(sent_time)
        assert timedelta(0) <= gap <= timedelta(seconds=2), (sent_time, occurred)
        # As times, not strings: "...:57Z" sorts after "...:57.950074Z" in the same second.
        generated = datetime.fromisoformat(document["generated_at"])
        assert datetime.fromisoformat(sent_time) <= generated

    def test_a_second_send_is_refused_and_nothing_is_sent_twice(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        ncmec_send(packet=packet, lead=lead)
        before = state(packet)
        with pytest.raises(NcmecConflict, match=r"already submitted .NCMEC report 4564654"):
            ncmec_send(packet=packet, lead=lead2)
        assert ncmec_on.routes() == ["/submit", "/finish"]
        assert state(packet) == before

    def test_missing_credentials_are_refused_naming_the_setting(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        settings: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        settings.SAFEGUARD_NCMEC_PASSWORD = ""
        before = state(packet)
        with pytest.raises(NcmecRefused, match="SAFEGUARD_NCMEC_PASSWORD"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_a_dry_run_destination_builds_and_checks_but_sends_nothing(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(
            moderator, lead, lead2, django_capture_on_commit_callbacks, mode="dry_run"
        )
        before = state(packet)
        with pytest.raises(
            NcmecRefused, match="dry run: the XML was built and checked; nothing is sent"
        ):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_a_packet_for_another_destination_is_refused(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks, police())
        before = state(packet)
        with pytest.raises(NcmecRefused, match="not to NCMEC"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_it_is_refused_when_the_adapter_is_switched_off(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        settings: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        settings.SAFEGUARD_NCMEC_ENABLED = False
        before = state(packet)
        with pytest.raises(NcmecRefused, match="SAFEGUARD_NCMEC_ENABLED"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_a_packet_that_is_not_built_is_refused(
        self, moderator: Any, lead: Any, ncmec_on: FakeEsp
    ) -> None:
        packet = packet_draft(
            cases=[decided_case(moderator)],
            destination=ncmec_destination(),
            priority="routine",
            summary="s",
            actor=lead,
            drafted_by=lead,
        )
        before = state(packet)
        with pytest.raises(
            NcmecConflict, match=r"Only a built packet can be sent .this one is draft"
        ):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_mode_and_environment_must_agree(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(
            moderator, lead, lead2, django_capture_on_commit_callbacks, mode="production"
        )
        before = state(packet)
        with pytest.raises(NcmecRefused, match="production mode but SAFEGUARD_NCMEC_ENVIRONMENT"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_a_tampered_zip_is_refused_logged_and_not_sent(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        zip_path(packet).write_bytes(zip_path(packet).read_bytes() + b"tampered")
        before = state(packet)
        with pytest.raises(StoredPacketError, match="does not match its recorded hash"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []
        assert "packet.integrity_failed" in verbs(packet)

    def test_a_packet_built_with_the_old_xml_is_refused_before_anything_is_sent(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        put_xml(packet, OLD_STYLE_XML)
        before = state(packet)
        with pytest.raises(NcmecRefused, match=r"would be rejected by NCMEC .*reportedPerson"):
            ncmec_send(packet=packet, lead=lead)
        assert state(packet) == before and ncmec_on.calls == []

    def test_a_failed_finish_is_retracted_and_the_packet_keeps_its_state(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        ncmec_on.http_errors["/finish"] = 503
        with pytest.raises(NcmecRefused, match=r"retracted.*The packet is unchanged"):
            ncmec_send(packet=packet, lead=lead)
        assert ncmec_on.routes() == ["/submit", "/finish", "/retract"]
        assert ncmec_on.retracted == {"4564654"} and ncmec_on.finished == {}
        fresh = ReferralPacket.objects.get(pk=packet.pk)
        assert fresh.status == ReferralPacket.Status.READY
        assert fresh.external_reference == "" and fresh.submitted_at is None
        assert "HTTP 503" in fresh.error and "4564654" in fresh.error
        event = AuditEvent.objects.get(verb="packet.ncmec_retracted")
        assert event.data["stage"] == "finish" and event.data["report_id"] == "4564654"
        # Sending again works once NCMEC is back, and clears the error.
        del ncmec_on.http_errors["/finish"]
        sent = ncmec_send(packet=packet, lead=lead)
        assert sent.status == "acknowledged" and sent.external_reference == "4564655"
        assert sent.error == ""

    def test_a_failed_retract_is_recorded_with_the_report_id_to_chase(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        ncmec_on.http_errors.update({"/finish": 500, "/retract": 500})
        with pytest.raises(NcmecRefused, match="retracting it failed too"):
            ncmec_send(packet=packet, lead=lead)
        fresh = ReferralPacket.objects.get(pk=packet.pk)
        assert fresh.status == "ready" and "ask NCMEC about that report ID" in fresh.error
        event = AuditEvent.objects.get(verb="packet.ncmec_failed")
        assert event.data["report_id"] == "4564654" and "HTTP 500" in event.data["retract_error"]

    def test_a_refused_submission_records_ncmecs_reason_and_keeps_the_state(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        ncmec_on.refusals["/submit"] = ("4100", "Element incidentType is invalid")
        with pytest.raises(NcmecRefused, match="did not accept the report"):
            ncmec_send(packet=packet, lead=lead)
        assert ncmec_on.routes() == ["/submit"]
        fresh = ReferralPacket.objects.get(pk=packet.pk)
        assert fresh.status == "ready"
        assert "responseCode 4100" in fresh.error and "incidentType is invalid" in fresh.error
        event = AuditEvent.objects.get(verb="packet.ncmec_failed")
        assert event.data["stage"] == "submit" and event.actor_id == lead.pk

    def test_an_unreachable_ncmec_leaves_the_packet_as_it_was(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        settings: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        settings.SAFEGUARD_NCMEC_TEST_URL = "http://127.0.0.1:9/ispws"
        with pytest.raises(NcmecRefused, match="no answer"):
            ncmec_send(packet=packet, lead=lead)
        fresh = ReferralPacket.objects.get(pk=packet.pk)
        assert fresh.status == "ready" and "/submit failed: no answer" in fresh.error
        assert "packet.ncmec_failed" in verbs(packet)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class NcmecSendConcurrencyTests:
    def test_a_send_while_another_is_in_flight_is_refused_at_once(
        self,
        moderator: Any,
        lead: Any,
        lead2: Any,
        ncmec_on: FakeEsp,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ncmec_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        locked, release = threading.Event(), threading.Event()

        def first_send_in_flight() -> None:
            # Stands for the first click's request, holding the row while it talks to NCMEC.
            try:
                with transaction.atomic():
                    ReferralPacket.objects.select_for_update().get(pk=packet.pk)
                    locked.set()
                    release.wait(10)
            finally:
                connection.close()

        holder = threading.Thread(target=first_send_in_flight)
        holder.start()
        try:
            assert locked.wait(10)
            with pytest.raises(NcmecConflict, match="being sent to NCMEC by someone else"):
                ncmec_send(packet=packet, lead=lead2)
        finally:
            release.set()
            holder.join(10)
        assert ncmec_on.calls == []
        assert ReferralPacket.objects.get(pk=packet.pk).status == "ready"
