"""The optional NCMEC CyberTipline adapter: the report XML, NCMEC's ESP API, and the send.

Sources (read, not copied; the code here is Safeguard's own):

- ROOST Coop, `server/services/ncmecService/ncmecReporting.ts` (github.com/roostorg/coop): the
  `Report` type and the comment above it ("Key insertion order ... must match the NCMEC XSD
  sequence (Appendix B) ... NCMEC rejects out-of-order submissions with responseCode=4100"),
  `buildSubmitReportObject` (what goes in `incidentSummary`, `reporter` and
  `personOrUserReported`, and in which order), `clampIncidentDateTimeToPast` (NCMEC rejects an
  `incidentDateTime` in the future: clamp to now - 1 s), `canonicaliseIpEvent` (the order of an
  `ipCaptureEvent`), `toOriginalFileHashes` (hash names upper-cased as NCMEC's `hashType`),
  `NCMECIncidentType` (the eight incident-type strings), `buildInternetDetailsFromOrgSetting`
  (a `<url>` with whitespace or control characters is rejected with 4100, so omit it),
  `#submit`, `#finish`, `#sendCyberTipRequest` and `extractNcmecResponseStatus` (/submit with
  `text/xml`, Basic auth, `reportResponse`/`responseCode`/`responseDescription`/`reportId`,
  `reportDoneResponse` from /finish), and `buildSubmitReportObject.test.ts` ("preserves XSD
  insertion order under a kitchen-sink scenario").
- Boostport/ncmec-go `cybertipline/types.go`, generated from NCMEC's XSD
  (https://report.cybertip.org/ispws/xsd) by `cybertipline/generate/generate.go`, which keeps
  each `xs:sequence` in order: the full child order of `<report>`, `<incidentSummary>` (with
  `platform` and `reportAnnotations`, which Coop does not emit), `<personOrUserReported>`,
  `Person`, `ContactPerson`; `reportAnnotations` children are typed `xs:boolean`. Its
  `client.go`: /finish and /retract take the report id as an `application/x-www-form-urlencoded`
  field `id`; /retract answers `reportResponse`.

Safeguard never uploads files (Coop's /upload and /fileinfo are not used, so there is no
`<fileDetails>`): the reports are text-only, and the hashes and file facts of each item travel
as text in `<additionalInfo>`.

Refusals are `NcmecRefused` / `NcmecConflict` (`core.errors.DomainError` / `Conflict`), not
`reports.packets.PacketError`: the packet builder imports `cybertipline_xml` from here, and
`reports.packets` imports the builder, so importing `reports.packets` here would be a cycle.

Imports models, `reports.destinations` (which settings are missing) and core; moderation's
`Escalation` for the referral time.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import Conflict, DomainError
from moderation.models import Escalation

from .destinations import ncmec_credentials_missing
from .models import Destination, ReferralPacket
from .storage import stored_packet_bytes

XML_FILE_NAME = "cybertipline.xml"
# NCMEC caps its free-text fields at 3000 characters (Coop validates `additionalInfo` and
# `escalateToHighPriority` against this limit before it submits).
TEXT_LIMIT = 3000

# --- The schema: element order (XSD xs:sequence) --------------------------------------------

# Children of <report>, in NCMEC's order (ncmec-go types.go `Report`; Coop's `Report` type).
NCMEC_REPORT_ORDER: tuple[str, ...] = (
    "batchedReport",
    "incidentSummary",
    "internetDetails",
    "lawEnforcement",
    "reporter",
    "personOrUserReported",
    "intendedRecipient",
    "victim",
    "additionalInfo",
)
_PERSON = ("firstName", "lastName", "phone", "email", "address", "age", "dateOfBirth")
# Every container element this adapter emits → the order of its children. Elements not listed
# here are leaves: they carry text and no children.
NCMEC_ORDER: dict[str, tuple[str, ...]] = {
    "report": NCMEC_REPORT_ORDER,
    "incidentSummary": (
        "incidentType",
        "platform",
        "escalateToHighPriority",
        "reportAnnotations",
        "incidentDateTime",
        "incidentDateTimeDescription",
    ),
    "reportAnnotations": (
        "sextortion",
        "csamSolicitation",
        "minorToMinorInteraction",
        "spam",
        "sadisticOnlineExploitation",
    ),
    # A choice: one incident kind per <internetDetails>.
    "internetDetails": (
        "webPageIncident",
        "emailIncident",
        "newsgroupIncident",
        "chatImIncident",
        "onlineGamingIncident",
        "cellPhoneIncident",
        "nonInternetIncident",
        "peer2peerIncident",
    ),
    "webPageIncident": ("url", "additionalInfo", "thirdPartyHostedContent"),
    "reporter": (
        "reportingPerson",
        "contactPerson",
        "companyTemplate",
        "termsOfService",
        "legalURL",
    ),
    "reportingPerson": _PERSON,
    "contactPerson": _PERSON[:5],
    "personOrUserReported": (
        "personOrUserReportedPerson",
        "vehicleDescription",
        "espIdentifier",
        "espService",
        "compromisedAccount",
        "screenName",
        "displayName",
        "profileUrl",
        "profileBio",
        "ipCaptureEvent",
        "deviceId",
        "thirdPartyUserReported",
        "priorCTReports",
        "groupIdentifier",
        "accountTemporarilyDisabled",
        "accountPermanentlyDisabled",
        "estimatedLocation",
        "allEmailsReported",
        "associatedAccount",
        "additionalInfo",
    ),
    "personOrUserReportedPerson": _PERSON,
    "ipCaptureEvent": ("ipAddress", "eventName", "dateTime", "possibleProxy", "port"),
    "estimatedLocation": ("city", "region", "countryCode"),
}
# (parent, child) pairs that may repeat (maxOccurs="unbounded"); every other child occurs at
# most once — in particular <personOrUserReported>: "There can be 0 or 1 reported user".
NCMEC_REPEATABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("report", "internetDetails"),
        ("report", "intendedRecipient"),
        ("report", "victim"),
        ("webPageIncident", "url"),
        *((p, c) for p in ("reportingPerson", "contactPerson") for c in ("phone", "email")),
        *((p, c) for p in ("personOrUserReportedPerson",) for c in ("phone", "email")),
        *(
            ("personOrUserReported", c)
            for c in ("displayName", "profileUrl", "ipCaptureEvent", "deviceId", "priorCTReports")
        ),
    }
)
NCMEC_REQUIRED: dict[str, tuple[str, ...]] = {
    "report": ("incidentSummary", "reporter"),
    "incidentSummary": ("incidentType", "incidentDateTime"),
    "reporter": ("reportingPerson",),
    "ipCaptureEvent": ("ipAddress",),
}

# --- Incident types and annotations ---------------------------------------------------------

CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
# The eight values of NCMEC's incidentType enumeration (Coop's `NCMECIncidentType`).
NCMEC_INCIDENT_TYPES: tuple[str, ...] = (
    CHILD_PORNOGRAPHY,
    CHILD_SEX_TRAFFICKING,
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    ONLINE_ENTICEMENT,
    "Unsolicited Obscene Material Sent to a Child",
)
# Safeguard harm category → NCMEC incident type. Sextortion is not an incident type in NCMEC's
# schema: it is online enticement with the `sextortion` report annotation.
INCIDENT_TYPE_BY_CATEGORY: dict[str, str] = {
    "known_csam": CHILD_PORNOGRAPHY,
    "new_csam": CHILD_PORNOGRAPHY,
    "livestream": CHILD_PORNOGRAPHY,
    "search_abuse": CHILD_PORNOGRAPHY,
    "grooming": ONLINE_ENTICEMENT,
    "sextortion_coercion": ONLINE_ENTICEMENT,
    # Advertising, recruiting, soliciting or procuring a child (18 U.S.C. § 1591).
    "procurement_advertising": CHILD_SEX_TRAFFICKING,
}
# child_safety_risk and not_illegal_on_face have no incident type of their own: the report
# takes the first mapped category of the case, else the kind of evidence (a file: child
# pornography; text only: online enticement).
ANNOTATIONS_BY_CATEGORY: dict[str, tuple[str, ...]] = {"sextortion_coercion": ("sextortion",)}

# XML 1.0 forbids these characters even escaped; ElementTree would write them as they are.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_URL_ILLEGAL = re.compile(r"[\s\x00-\x1f\x7f]")
_HASH_ORDER = ("md5", "sha1", "sha256", "pdq")


def _clean(value: Any) -> str | None:
    """Text fit for an element, or None (absent, blank or only characters XML cannot carry)."""
    if value is None or isinstance(value, bool):
        return None
    text = _XML_ILLEGAL.sub("", str(value)).strip()
    return text or None


def _cap(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _leaf(parent: ET.Element, tag: str, value: Any) -> None:
    text = _clean(value)
    if text is not None:
        ET.SubElement(parent, tag).text = text


def _attach(parent: ET.Element, child: ET.Element) -> None:
    """Append a container only if something went into it: NCMEC rejects empty elements."""
    if len(child):
        parent.append(child)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _xml_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident_type(document: dict[str, Any]) -> str:
    """The NCMEC incident type for the referral's harm categories (see the mapping above)."""
    incident = document.get("incident") or {}
    codes = [incident.get("category"), *(incident.get("categories") or [])]
    for code in codes:
        if code in INCIDENT_TYPE_BY_CATEGORY:
            return INCIDENT_TYPE_BY_CATEGORY[code]
    has_file = any(item.get("file") for item in document.get("items") or [])
    return CHILD_PORNOGRAPHY if has_file else ONLINE_ENTICEMENT


def report_annotations(document: dict[str, Any]) -> list[str]:
    incident = document.get("incident") or {}
    codes = {incident.get("category"), *(incident.get("categories") or [])}
    wanted = {a for code in codes for a in ANNOTATIONS_BY_CATEGORY.get(code or "", ())}
    return [a for a in NCMEC_ORDER["reportAnnotations"] if a in wanted]


def incident_datetime(document: dict[str, Any], now: datetime) -> tuple[datetime, str]:
    """When the incident happened, and how that time was chosen.

    1. The incident's time (the latest item time, from the referral document);
    2. else the latest time any item occurred or reached Safeguard;
    3. else the time the referral was generated (approval) — said so in the description.
    Never in the future: NCMEC rejects that, so a later time becomes now - 1 s (as Coop does).
    """
    items = document.get("items") or []
    chosen = _parse_time((document.get("incident") or {}).get("occurred_at"))
    description = "Time of the latest reported item."
    if chosen is None:
        times = [
            t
            for item in items
            for t in (_parse_time(item.get("occurred_at")), _parse_time(item.get("received_at")))
            if t is not None
        ]
        if times:
            chosen = max(times)
            description = "Time of the latest reported item (when it occurred or was received)."
    if chosen is None:
        chosen = _parse_time(document.get("generated_at")) or now
        description = "No item time was recorded; this is when the referral was approved."
    ceiling = now - timedelta(seconds=1)
    if chosen > ceiling:
        chosen = ceiling
        description = (
            "The latest item time was later than the time of reporting (clock skew); "
            "the time of reporting is given instead."
        )
    return chosen, description


def _escalation(document: dict[str, Any]) -> str | None:
    reason = _clean((document.get("incident") or {}).get("escalation_reason"))
    if reason is None and document.get("priority") == "immediate":
        reason = "A child is at immediate risk (the referring safety lead marked it immediate)."
    return _cap(reason) if reason else None


def _clean_url(value: Any) -> str | None:
    url = value.strip() if isinstance(value, str) else ""
    if not url or _URL_ILLEGAL.search(url) or _XML_ILLEGAL.search(url):
        return None
    return url


def _ip_events(suspect: dict[str, Any]) -> list[dict[str, Any]]:
    """The suspect's IP events; documents of the older shape list bare addresses and ports."""
    events = [e for e in suspect.get("ip_events") or [] if isinstance(e, dict)]
    if not events:
        ports = suspect.get("ports") or []
        events = [
            {"ip_address": ip, "port": ports[0] if len(ports) == 1 else None}
            for ip in suspect.get("ip_addresses") or []
        ]
    return events


def _ip_capture_event(parent: ET.Element, event: dict[str, Any]) -> None:
    try:
        address = str(ipaddress.ip_address(str(event.get("ip_address") or "").strip()))
    except ValueError:
        return
    element = ET.SubElement(parent, "ipCaptureEvent")
    _leaf(element, "ipAddress", address)
    # The platform gives an address and a time, not what the user was doing (login, upload):
    # "Unknown" claims no more than that (as Coop does for a bare address).
    _leaf(element, "eventName", "Unknown")
    seen = _parse_time(event.get("seen_at"))
    if seen is not None:
        _leaf(element, "dateTime", _xml_time(seen))
    port = event.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        _leaf(element, "port", port)


def _person(tag: str, *, phone: Any = None, email: Any = None) -> ET.Element:
    person = ET.Element(tag)
    _leaf(person, "phone", phone)
    email_text = _clean(email)
    if email_text and "@" in email_text:
        _leaf(person, "email", email_text)
    return person


def _suspect_label(suspect: dict[str, Any]) -> str:
    parts = [f"{suspect.get('source') or '?'}:{suspect.get('account_id') or '?'}"]
    for key, label in (
        ("username", "username"),
        ("display_name", "display name"),
        ("email", "email"),
        ("phone", "phone"),
    ):
        if _clean(suspect.get(key)):
            parts.append(f"{label} {_clean(suspect.get(key))}")
    ips = [str(e.get("ip_address")) for e in _ip_events(suspect) if e.get("ip_address")]
    if ips:
        parts.append("IP " + ", ".join(ips))
    return "; ".join(parts)


def _person_or_user_reported(suspect: dict[str, Any]) -> ET.Element:
    reported = ET.Element("personOrUserReported")
    _attach(
        reported,
        _person(
            "personOrUserReportedPerson", phone=suspect.get("phone"), email=suspect.get("email")
        ),
    )
    _leaf(reported, "espIdentifier", suspect.get("account_id"))
    _leaf(reported, "espService", suspect.get("source"))
    _leaf(reported, "screenName", suspect.get("username"))
    _leaf(reported, "displayName", suspect.get("display_name"))
    for event in _ip_events(suspect):
        _ip_capture_event(reported, event)
    countries = [c for c in suspect.get("countries") or [] if isinstance(c, str)]
    first_country = countries[0].strip().upper() if countries else ""
    if len(first_country) == 2 and first_country.isalpha():
        location = ET.SubElement(reported, "estimatedLocation")
        _leaf(location, "countryCode", first_country)
    notes = []
    created = _parse_time(suspect.get("account_created_at"))
    if created is not None:
        notes.append(f"Account created {_xml_time(created)}.")
    if len(countries) > 1:
        notes.append("Countries seen: " + ", ".join(countries) + ".")
    linked = [_clean(a) for a in suspect.get("linked_accounts") or []]
    if any(linked):
        notes.append("Linked accounts: " + ", ".join(a for a in linked if a) + ".")
    if notes:
        _leaf(reported, "additionalInfo", _cap(" ".join(notes)))
    return reported


def _yes_no(value: Any) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _item_line(number: int, item: dict[str, Any], org: str) -> str:
    parts = [
        f"Item {number}: {item.get('kind') or 'item'} "
        f"{item.get('source') or '?'}:{item.get('external_id') or '?'}"
    ]
    for key, label in (("occurred_at", "occurred"), ("received_at", "received by Safeguard")):
        when = _parse_time(item.get(key))
        if when is not None:
            parts.append(f"{label} {_xml_time(when)}")
    url = _clean_url(item.get("url"))
    if url:
        parts.append(f"URL {url}")
    parts.append(f"publicly available: {_yes_no(item.get('publicly_available'))}")
    parts.append(f"viewed by {org}: {_yes_no(item.get('viewed_by_provider'))}")
    file = item.get("file") or {}
    if file:
        facts = [_clean(file.get("mime"))]
        if isinstance(file.get("size"), int):
            facts.append(f"{file['size']} bytes")
        name = _clean(file.get("original_file_name"))
        if name:
            facts.append(f"original name {name}")
        parts.append("file " + ", ".join(f for f in facts if f))
        hashes = {k: v for k, v in (file.get("hashes") or {}).items() if _clean(v)}
        hashes = {k: v for k, v in hashes.items() if isinstance(v, str)}
        ordered = [k for k in _HASH_ORDER if k in hashes] + sorted(set(hashes) - set(_HASH_ORDER))
        if ordered:
            # NCMEC's name for the hash of the file as uploaded, with its hashType (Coop's
            # toOriginalFileHashes upper-cases the algorithm); here as text, no <fileDetails>.
            parts.append(
                "originalFileHash " + ", ".join(f"{k.upper()}={_clean(hashes[k])}" for k in ordered)
            )
        video = file.get("video") or {}
        if video.get("frames"):
            parts.append(f"video: {len(video['frames'])} frame hashes (vPDQ) in the packet")
    for match in item.get("matches") or []:
        facts = [
            _clean(match.get("provider")),
            _clean(match.get("algorithm")),
            f"distance {match['distance']}" if match.get("distance") is not None else None,
            f"category {_clean(match.get('provider_category'))}"
            if _clean(match.get("provider_category"))
            else None,
        ]
        parts.append(
            f"matched hash list {_clean(match.get('list')) or '?'} ("
            + ", ".join(f for f in facts if f)
            + ")"
        )
    return "; ".join(parts) + "."


def _additional_info(document: dict[str, Any], others: list[dict[str, Any]]) -> str:
    """The report's free text: the summary, the other reported accounts, then one line per item
    (hashes and file facts: Safeguard uploads no files). Capped at NCMEC's 3000 characters,
    saying how many item lines were left out and where the full list is."""
    org_info = document.get("reporting_organisation") or {}
    org = _clean(org_info.get("name")) or "the provider"
    contact = (org_info.get("contact_point") or {}).get("email") or ""
    reference = _clean(document.get("reference")) or "?"
    incident = document.get("incident") or {}
    categories = [c for c in [incident.get("category"), *(incident.get("categories") or [])] if c]
    head = [f"Safeguard referral {reference} from {org}; priority {document.get('priority')}."]
    if categories:
        head.append("Harm categories: " + ", ".join(dict.fromkeys(categories)) + ".")
    summary = _clean(incident.get("summary"))
    if summary:
        head.append("Summary: " + _cap(summary, 1200))
    if others:
        head.append(
            "Other reported accounts (NCMEC takes one reported person per report): "
            + _cap(" | ".join(_suspect_label(s) for s in others), 800)
        )
    head.append("Text-only report: no files are attached; each item's hashes follow.")
    lines = [_item_line(n, item, org) for n, item in enumerate(document.get("items") or [], 1)]
    text = "\n".join(head)
    for kept, line in enumerate(lines):
        left = len(lines) - kept
        tail = f"\n… {left} more item(s) in referral packet {reference}; ask {org} ({contact})."
        if len(text) + 1 + len(line) + (len(tail) if left > 1 else 0) > TEXT_LIMIT:
            return _cap(text + tail)
        text += "\n" + line
    return _cap(text)


def cybertipline_xml(document: dict[str, Any], *, now: datetime | None = None) -> bytes:
    """The CyberTipline `<report>` for a referral document (`reports.builder.referral_document`).

    Children in NCMEC's order (`NCMEC_ORDER`); empty elements are never written; at most one
    `<personOrUserReported>` (the first suspect; the others are named in `<additionalInfo>`);
    no file bytes and no `<fileDetails>` (text-only). Raises ValueError when the document
    lacks what NCMEC requires (the reporting organisation's contact email).
    """
    now = now or timezone.now()
    org = document.get("reporting_organisation") or {}
    contact = org.get("contact_point") or {}
    reporter_email = _clean(contact.get("email"))
    if not reporter_email or "@" not in reporter_email:
        raise ValueError(
            "An NCMEC report needs the reporting organisation's contact email "
            "(SAFEGUARD_ORG_CONTACT_EMAIL)."
        )
    report = ET.Element("report")

    summary = ET.SubElement(report, "incidentSummary")
    _leaf(summary, "incidentType", incident_type(document))
    _leaf(summary, "escalateToHighPriority", _escalation(document))
    annotations = report_annotations(document)
    if annotations:
        element = ET.SubElement(summary, "reportAnnotations")
        for name in annotations:
            _leaf(element, name, "true")  # xs:boolean in NCMEC's XSD
    when, description = incident_datetime(document, now)
    _leaf(summary, "incidentDateTime", _xml_time(when))
    _leaf(summary, "incidentDateTimeDescription", description)

    urls = list(
        dict.fromkeys(
            u for u in (_clean_url(i.get("url")) for i in document.get("items") or []) if u
        )
    )
    if urls:
        details = ET.SubElement(report, "internetDetails")
        page = ET.SubElement(details, "webPageIncident")
        for url in urls:
            _leaf(page, "url", url)

    reporter = ET.SubElement(report, "reporter")
    reporter.append(_person("reportingPerson", phone=contact.get("phone"), email=reporter_email))
    template = [_clean(org.get("name")), _clean(contact.get("name")), reporter_email]
    _leaf(
        reporter,
        "companyTemplate",
        _cap(
            f"Reported by {template[0] or 'the provider'} through Safeguard. Contact: "
            f"{template[1] or 'the safety team'} <{reporter_email}>"
            + (f", {_clean(contact.get('phone'))}" if _clean(contact.get("phone")) else "")
            + ". The original files are preserved by the provider and never attached."
        ),
    )

    suspects = [s for s in document.get("suspects") or [] if isinstance(s, dict)]
    if suspects:
        _attach(report, _person_or_user_reported(suspects[0]))
    _leaf(report, "additionalInfo", _additional_info(document, suspects[1:]))

    ET.indent(report, space="  ")
    body = ET.tostring(report, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


# --- Checking a report before it is sent ----------------------------------------------------


def parse_xml(data: bytes) -> ET.Element:
    """Parse XML that carries no DTD. A document type declaration is refused before parsing, so
    no entity can be declared or expanded (billion laughs, external entities)."""
    if re.search(rb"<!(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise ValueError("XML with a document type declaration is refused.")
    return ET.fromstring(data)  # noqa: S314 — no DTD (checked above), so no entities


def _element_problems(element: ET.Element, path: str) -> list[str]:
    problems: list[str] = []
    order = NCMEC_ORDER.get(element.tag)
    if order is None:
        if len(element):
            problems.append(f"{path} is not a container but has children")
        elif not (element.text or "").strip():
            problems.append(f"{path} is empty")
        return problems
    if not len(element):
        return [f"{path} is empty"]
    position = -1
    seen: dict[str, int] = {}
    for child in element:
        child_path = f"{path}/{child.tag}"
        if child.tag not in order:
            problems.append(f"{child_path} is not an element of <{element.tag}>")
            continue
        index = order.index(child.tag)
        if index < position:
            problems.append(f"{child_path} is out of order (expected order: {', '.join(order)})")
        position = max(position, index)
        seen[child.tag] = seen.get(child.tag, 0) + 1
        if seen[child.tag] == 2 and (element.tag, child.tag) not in NCMEC_REPEATABLE:
            problems.append(f"{child_path} occurs more than once")
        problems += _element_problems(child, child_path)
    if element.tag == "internetDetails" and len(element) != 1:
        problems.append(f"{path} must hold exactly one incident kind")
    for required in NCMEC_REQUIRED.get(element.tag, ()):
        if required not in seen:
            problems.append(f"{path}/{required} is missing")
    return problems


def report_problems(xml: bytes) -> list[str]:
    """Why NCMEC would reject this `<report>` (empty when it would not): unknown elements,
    children out of order, empty elements, a repeated single element, required ones missing,
    an unknown incident type, an incident time in the future."""
    try:
        root = parse_xml(xml)
    except (ET.ParseError, ValueError) as exc:
        return [f"not well-formed XML: {exc}"]
    if root.tag != "report":
        return [f"the root element is <{root.tag}>, not <report>"]
    problems = _element_problems(root, "report")
    kind = root.findtext("incidentSummary/incidentType")
    if kind is not None and kind.strip() not in NCMEC_INCIDENT_TYPES:
        problems.append(f"unknown incidentType {kind!r}")
    when = _parse_time(root.findtext("incidentSummary/incidentDateTime"))
    if root.find("incidentSummary/incidentDateTime") is not None and (
        when is None or when > timezone.now()
    ):
        problems.append("incidentDateTime is not a past date and time")
    return problems


# --- NCMEC's ESP API ------------------------------------------------------------------------


class EspError(Exception):
    """NCMEC refused a request, or it did not answer. The message names the route, the HTTP
    status and NCMEC's responseCode and responseDescription — never the response body, which
    may echo reported content (Coop's `summarizeCyberTipFailure` does the same)."""

    def __init__(
        self,
        route: str,
        reason: str,
        *,
        status: int | None = None,
        response_code: str | None = None,
        description: str | None = None,
    ) -> None:
        parts = [f"NCMEC {route} failed: {reason}"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if response_code is not None:
            parts.append(f"responseCode {response_code}")
        if description:
            parts.append(f"“{description[:200]}”")
        super().__init__(", ".join(parts))
        self.route = route
        self.status = status
        self.response_code = response_code
        self.description = description


class NcmecNotConfigured(Exception):
    """A setting the ESP client needs is missing or wrong; the message names it."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class EspClient:
    """NCMEC's CyberTipline ESP API: /submit → /finish, or /retract; /status to check access.

    Plain urllib (as `core.outbound`), Basic auth, one attempt per call: a retried /submit
    could open a second report. Never call it inside a database transaction unless the
    caller means to hold the transaction for the exchange (see `ncmec_send`).
    """

    base_url: str
    username: str
    password: str
    timeout: float = 30.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        # Basic auth sends the password with every request: https only (plain http only to
        # this machine, for a local test server).
        if parts.scheme != "https" and not (
            parts.scheme == "http" and _is_loopback(parts.hostname or "")
        ):
            raise NcmecNotConfigured(f"The NCMEC URL must be https:// (got {self.base_url!r}).")

    @classmethod
    def from_settings(cls) -> EspClient:
        """The client for SAFEGUARD_NCMEC_ENVIRONMENT; refuses naming the missing setting."""
        missing = ncmec_credentials_missing()
        if missing:
            raise NcmecNotConfigured(
                f"NCMEC credentials are not set: {', '.join(missing)}. Nothing was sent."
            )
        environment = settings.SAFEGUARD_NCMEC_ENVIRONMENT
        setting = {
            "test": "SAFEGUARD_NCMEC_TEST_URL",
            "production": "SAFEGUARD_NCMEC_PRODUCTION_URL",
        }.get(environment)
        if setting is None:
            raise NcmecNotConfigured(
                f"SAFEGUARD_NCMEC_ENVIRONMENT must be 'test' or 'production' (not {environment!r})."
            )
        url = getattr(settings, setting, "")
        if not url:
            raise NcmecNotConfigured(f"{setting} is not set.")
        return cls(
            base_url=url.rstrip("/"),
            username=settings.SAFEGUARD_NCMEC_USERNAME,
            password=settings.SAFEGUARD_NCMEC_PASSWORD,
            timeout=float(settings.SAFEGUARD_NCMEC_TIMEOUT_SECONDS),
        )

    def _request(
        self, route: str, *, body: bytes | None, content_type: str | None, expect: str
    ) -> dict[str, str]:
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "User-Agent": "Safeguard/1"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 — https (or loopback), checked above
            self.base_url + route,
            data=body,
            method="POST" if body is not None else "GET",
            headers=headers,
        )
        status: int | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, raw = response.status, response.read(65536)
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read(65536)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EspError(route, f"no answer ({exc})") from None
        fields = _response_fields(raw)
        code = fields.get("responseCode")
        if status != 200 or code != "0" or fields.get("_root") != expect:
            reason = "refused" if code not in (None, "0") else "unexpected answer"
            raise EspError(
                route,
                reason,
                status=status,
                response_code=code,
                description=fields.get("responseDescription"),
            )
        return fields

    def submit(self, xml: bytes) -> str:
        """Open a report from its XML; returns NCMEC's report ID."""
        fields = self._request(
            "/submit", body=xml, content_type="text/xml; charset=utf-8", expect="reportResponse"
        )
        report_id = fields.get("reportId", "")
        if not report_id:
            raise EspError("/submit", "no reportId in the answer")
        return report_id

    def _form(self, route: str, report_id: str, expect: str) -> dict[str, str]:
        body = urllib.parse.urlencode({"id": report_id}).encode()
        return self._request(
            route, body=body, content_type="application/x-www-form-urlencoded", expect=expect
        )

    def finish(self, report_id: str) -> dict[str, Any]:
        """Complete the report: NCMEC processes it from now on. Returns its `reportDoneResponse`
        (`report_id`, `file_ids`: none, as Safeguard uploads no files)."""
        fields = self._form("/finish", report_id, "reportDoneResponse")
        return {"report_id": fields.get("reportId") or report_id, "file_ids": []}

    def retract(self, report_id: str) -> None:
        """Withdraw a report that was opened but not finished."""
        self._form("/retract", report_id, "reportResponse")

    def status(self) -> dict[str, str]:
        """Check that the API answers and accepts the credentials."""
        return self._request("/status", body=None, content_type=None, expect="reportResponse")


def _response_fields(raw: bytes) -> dict[str, str]:
    """The root element's name (`_root`) and its leaf children's text, or {} if not XML."""
    try:
        root = parse_xml(raw)
    except (ET.ParseError, ValueError):
        return {}
    fields = {"_root": root.tag}
    for child in root:
        if not len(child):
            fields[child.tag] = (child.text or "").strip()
    return fields


# --- Sending a packet -----------------------------------------------------------------------


class NcmecRefused(DomainError):
    """ncmec_send refused: nothing was sent, or NCMEC did not accept the report; the packet's
    status is unchanged."""


class NcmecConflict(NcmecRefused, Conflict):
    """Refused because of the packet's state (already submitted, not built, being sent)."""


SENDABLE = (ReferralPacket.Status.READY, ReferralPacket.Status.EXPORTED)


def _refuse_unless_sendable(packet: ReferralPacket) -> None:
    destination = packet.destination
    if destination.kind != Destination.Kind.NCMEC:
        raise NcmecRefused(
            f"{packet.reference} goes to {destination.name}, not to NCMEC: it cannot be sent "
            "through the CyberTipline API."
        )
    if not settings.SAFEGUARD_NCMEC_ENABLED:
        raise NcmecRefused(
            "The NCMEC adapter is not enabled on this installation (SAFEGUARD_NCMEC_ENABLED)."
        )
    if not destination.enabled:
        raise NcmecRefused(f"The destination {destination.name!r} is disabled.")
    if packet.status in (ReferralPacket.Status.SUBMITTED, ReferralPacket.Status.ACKNOWLEDGED):
        raise NcmecConflict(
            f"{packet.reference} was already submitted"
            + (f" (NCMEC report {packet.external_reference})" if packet.external_reference else "")
            + "."
        )
    if packet.status not in SENDABLE:
        raise NcmecConflict(
            f"Only a built packet can be sent (this one is {packet.get_status_display().lower()})."
        )


def _signed_xml(packet: ReferralPacket, lead: Any) -> bytes:
    """The exact cybertipline.xml of the stored, signed zip — what was approved is what is
    sent — after checking the zip against its recorded SHA-256."""
    data = stored_packet_bytes(packet=packet, actor=lead, during="ncmec_send")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            xml = archive.read(XML_FILE_NAME)
    except (KeyError, zipfile.BadZipFile):
        raise NcmecConflict(f"{packet.reference} has no {XML_FILE_NAME}: rebuild it.") from None
    problems = report_problems(xml)
    if problems:
        raise NcmecRefused(
            f"The packet's {XML_FILE_NAME} would be rejected by NCMEC ("
            + "; ".join(problems[:5])
            + "). Nothing was sent; rebuild the packet."
        )
    return xml


@dataclass
class _Exchange:
    report_id: str = ""
    finished: bool = False
    retracted: bool = False
    stage: str = ""
    error: str = ""
    retract_error: str = ""


def _exchange(client: EspClient, xml: bytes) -> _Exchange:
    """/submit then /finish; if /finish fails, /retract, so nothing is left half-sent."""
    outcome = _Exchange()
    try:
        outcome.report_id = client.submit(xml)
    except EspError as exc:
        outcome.stage, outcome.error = "submit", str(exc)
        return outcome
    try:
        client.finish(outcome.report_id)
    except EspError as exc:
        outcome.stage, outcome.error = "finish", str(exc)
        try:
            client.retract(outcome.report_id)
        except EspError as retract_exc:
            outcome.retract_error = str(retract_exc)
        else:
            outcome.retracted = True
        return outcome
    outcome.finished = True
    return outcome


def ncmec_send(*, packet: ReferralPacket, lead: Any) -> ReferralPacket:
    """Send a built NCMEC packet's CyberTipline report through the ESP API.

    1. Refuse, sending nothing, unless the packet is for an enabled NCMEC destination, the
       adapter is on, and the packet is built (ready or exported) and not yet submitted.
    2. Read `cybertipline.xml` from the stored zip after checking the zip's SHA-256, and
       check the XML against NCMEC's element order and rules.
    3. Refuse in dry run ("the XML was built and checked; nothing is sent"), when the
       destination's mode and SAFEGUARD_NCMEC_ENVIRONMENT disagree, or when a setting is
       missing (named).
    4. With the packet's row locked: /submit, then /finish; if /finish fails, /retract.
    5. Finished: status **acknowledged** — /finish is NCMEC's acceptance of the complete report
       and returns its CyberTipline report ID, the recipient's reference that a lead otherwise
       records by hand (`packet_acknowledge`) — with submitted_at = acknowledged_at = now,
       submitted_by = the lead, submission_channel "ncmec_api", external_reference = the
       report ID. Audited as `packet.ncmec_submitted` and `packet.acknowledged`.
       Not finished: the status is unchanged, `error` says why, and `packet.ncmec_failed` or
       `packet.ncmec_retracted` is audited; then NcmecRefused is raised.
    """
    fresh = ReferralPacket.objects.select_related("destination").get(pk=packet.pk)
    _refuse_unless_sendable(fresh)
    xml = _signed_xml(fresh, lead)
    destination = fresh.destination
    if destination.mode == Destination.Mode.DRY_RUN:
        raise NcmecRefused(
            f"{destination.name} is in dry run: the XML was built and checked; nothing is sent."
        )
    try:
        client = EspClient.from_settings()
    except NcmecNotConfigured as exc:
        raise NcmecRefused(str(exc)) from None
    environment = settings.SAFEGUARD_NCMEC_ENVIRONMENT
    if destination.mode != environment:
        raise NcmecRefused(
            f"{destination.name} is in {destination.mode} mode but SAFEGUARD_NCMEC_ENVIRONMENT "
            f"is {environment!r}: make them agree. Nothing was sent."
        )

    xml_sha256 = hashlib.sha256(xml).hexdigest()
    with transaction.atomic():
        # The row lock is held for the whole exchange with NCMEC, deliberately (the one place
        # this app does network I/O inside a transaction): it is what makes a double click, or
        # two leads at once, send one report and not two — the second request finds the row
        # locked and is refused at once (NOWAIT), or, once the first committed, finds it
        # submitted. No status is needed for "sending", so none can be left stuck: if this
        # worker dies, the database drops the lock and NCMEC was never sent /finish, and an
        # unfinished report is not processed. The wait is bounded by the client's timeout.
        try:
            locked = (
                ReferralPacket.objects.select_for_update(nowait=True, of=("self",))
                .select_related("destination")
                .get(pk=packet.pk)
            )
        except OperationalError:
            raise NcmecConflict(
                f"{fresh.reference} is being sent to NCMEC by someone else right now."
            ) from None
        _refuse_unless_sendable(locked)
        outcome = _exchange(client, xml)
        audit_data = {
            "environment": environment,
            "xml_sha256": xml_sha256,
            "packet_sha256": locked.sha256,
        }
        if outcome.finished:
            now = timezone.now()
            locked.status = ReferralPacket.Status.ACKNOWLEDGED
            locked.submitted_at = now
            locked.submitted_by = lead
            locked.submission_channel = "ncmec_api"
            locked.external_reference = outcome.report_id[:200]
            locked.acknowledged_at = now
            locked.error = ""
            locked.save(
                update_fields=[
                    "status",
                    "submitted_at",
                    "submitted_by",
                    "submission_channel",
                    "external_reference",
                    "acknowledged_at",
                    "error",
                    "updated_at",
                ]
            )
            audit_record(
                actor=lead,
                verb="packet.ncmec_submitted",
                obj=locked,
                data={**audit_data, "report_id": outcome.report_id},
            )
            audit_record(
                actor=lead,
                verb="packet.acknowledged",
                obj=locked,
                data={"external_reference": outcome.report_id, "channel": "ncmec_api"},
            )
            if locked.escalation_id:
                Escalation.objects.filter(pk=locked.escalation_id, referred_at__isnull=True).update(
                    referred_at=now
                )
            return locked
        if outcome.stage == "submit":
            message = f"NCMEC did not accept the report: {outcome.error}"
        elif outcome.retracted:
            message = (
                f"NCMEC opened report {outcome.report_id} but did not finish it "
                f"({outcome.error}); it was retracted."
            )
        else:
            message = (
                f"NCMEC opened report {outcome.report_id} but did not finish it "
                f"({outcome.error}), and retracting it failed too ({outcome.retract_error}): "
                "ask NCMEC about that report ID before sending again."
            )
        locked.error = message[:2000]
        locked.save(update_fields=["error", "updated_at"])
        audit_record(
            actor=lead,
            verb="packet.ncmec_retracted" if outcome.retracted else "packet.ncmec_failed",
            obj=locked,
            data={
                **audit_data,
                "stage": outcome.stage,
                "report_id": outcome.report_id,
                "error": outcome.error[:500],
                "retract_error": outcome.retract_error[:500],
            },
        )
    # Raised after the block, so the error and its audit event are committed.
    raise NcmecRefused(message + " The packet is unchanged; you can send it again.")
