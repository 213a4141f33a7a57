"""Build referral packets: referral.json, summary.pdf, custody.json, manifest.json + signature.

The builder takes text and numbers only. It has no code path that reads an evidence file, and
`_refuse_media` checks every file it writes against image and video signatures, so a packet can
never carry imagery (gov.uk: "You should not send indecent images of children as part of the
report to police").

Determinism: the same inputs give byte-identical files (sorted JSON keys, fixed zip timestamps,
the approval time as the generation time, a PDF with a fixed creation date and file id).

Imports models, `reports.signing`, moderation's models and core's audit trail; the packet
workflow (`reports.packets.packet_build`) calls it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jsonschema
from django.conf import settings
from django.db.models import Q

from core.audit import audit_seal
from core.models import AuditEvent
from moderation.models import Case, Escalation, Item, LegalHold, Reveal

from . import signing
from .models import ReferralPacket

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "referral-v1.schema.json"
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Magic numbers of image and video formats: a packet file starting with one is refused.
MEDIA_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x1aE\xdf\xa3",
    b"\x00\x00\x01\x00",
)


class MediaInPacket(Exception):
    """The builder was handed binary media. Never happens by design; refused if it does."""


def looks_like_media(data: bytes) -> bool:
    if data.startswith(MEDIA_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"AVI "):
        return True
    return data[4:8] == b"ftyp"  # MP4, MOV, HEIC, AVIF


def _refuse_media(name: str, data: bytes) -> bytes:
    if looks_like_media(data):
        raise MediaInPacket(f"{name}: refused, the content is an image or video")
    return data


@cache
def referral_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@cache
def _referral_validator() -> Any:
    # jsonschema.validate() re-checks the schema against its metaschema on every call (about
    # half the validation time of a 100-item packet): check it once, keep the validator.
    schema = referral_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def validate_referral(document: dict[str, Any]) -> None:
    """Raise the best-matching ValidationError, as jsonschema.validate() does."""
    error = jsonschema.exceptions.best_match(_referral_validator().iter_errors(document))
    if error is not None:
        raise error


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"


# --- referral.json ----------------------------------------------------------------------------


def _items(cases: list[Case]) -> list[Item]:
    return list(
        Item.objects.filter(case__in=cases)
        .select_related("case", "media")
        .prefetch_related(
            "flags__category",
            "media__matches__hash_list",
            "media__matches__known_hash",
            "media__frames",
        )
        .order_by("case_id", "created_at", "id")
    )


def _item_entry(item: Item, viewed: set[int], held_cases: set[int]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "case_reference": item.case.reference,
        "kind": item.kind,
        "source": item.source,
        "external_id": item.external_id,
        "received_at": _iso(item.created_at),
        "occurred_at": _iso(item.occurred_at),
        "publicly_available": None if item.visibility == "unknown" else item.visibility == "public",
        "uk_linked": item.uk_linked,
        "viewed_by_provider": False,
        "hashes_available": False,
        "flags": [
            {
                "source": f.source,
                "category": f.category.code if f.category else None,
                "note": f.note,
                "at": _iso(f.created_at),
            }
            for f in item.flags.all()
        ],
    }
    if item.url:
        entry["url"] = item.url
    if item.text:
        entry["text"] = item.text
    media = getattr(item, "media", None)
    if media is not None:
        entry["viewed_by_provider"] = media.pk in viewed  # from the reveal log, never a form
        entry["hashes_available"] = True
        entry["file"] = {
            "mime": media.mime,
            "size": media.size,
            "width": media.width,
            "height": media.height,
            "original_file_name": media.original_name,
            "exif": {str(k): str(v) for k, v in sorted(media.exif.items())},
            "preserved": item.case_id in held_cases and media.purged_at is None,
            "hashes": {
                "sha256": media.sha256,
                "md5": media.md5 or None,
                "sha1": media.sha1 or None,
                "pdq": media.pdq or None,
                "pdq_quality": media.pdq_quality,
                "phash": media.phash or None,
                "dhash": media.dhash or None,
            },
        }
        if media.has_frames:
            # Frame hashes only (vPDQ): the frames themselves, and their thumbnails, never.
            entry["file"]["video"] = {
                "duration": media.duration,
                "codec": media.codec,
                "frame_rate": media.frame_rate,
                "frame_count": media.frame_count,
                "frames": [
                    {"frame": f.frame, "timestamp": f.timestamp, "quality": f.quality, "pdq": f.pdq}
                    for f in media.frames.all()
                ],
            }
        entry["matches"] = [_match_entry(m) for m in media.matches.all()]
    return entry


def _match_entry(match: Any) -> dict[str, Any]:
    entry = {
        "list": match.hash_list.name,
        "provider": match.hash_list.provider,
        "algorithm": match.algorithm,
        "distance": match.distance,
        "provider_category": match.known_hash.category,
    }
    if match.segments:
        entry["segments"] = match.segments
    if match.transform:
        entry["transform"] = match.transform
    if match.verdict:
        entry["verdict"] = match.verdict
    if match.known_hash.withdrawn_at is not None:
        entry["withdrawn_by_source"] = True
    if match.listed_percent is not None:
        entry["query_percent"] = match.query_percent
        entry["listed_percent"] = match.listed_percent
    return entry


def _suspects(items: list[Item]) -> list[dict[str, Any]]:
    accounts: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if not item.subject_account_id:
            continue
        entry = accounts.setdefault(
            (item.source, item.subject_account_id),
            {
                "source": item.source,
                "account_id": item.subject_account_id,
                "username": item.subject_username,
                "ip_addresses": [],
                "ports": [],
                "countries": [],
                "account_created_at": _iso(item.subject_account_created_at),
            },
        )
        if item.subject_ip and item.subject_ip not in entry["ip_addresses"]:
            entry["ip_addresses"].append(item.subject_ip)
        if item.subject_port and item.subject_port not in entry["ports"]:
            entry["ports"].append(item.subject_port)
        if item.subject_country and item.subject_country not in entry["countries"]:
            entry["countries"].append(item.subject_country)
    return [accounts[k] for k in sorted(accounts)]


def referral_document(packet: ReferralPacket) -> dict[str, Any]:
    """The referral.json content for a packet, from the database (text and hashes only)."""
    cases = list(packet.cases.order_by("id"))
    items = _items(cases)
    media_ids = [i.media.pk for i in items if getattr(i, "media", None)]
    # Viewed by the provider: the file itself was revealed. A contact-sheet frame (a small
    # still of a video) is not the file: saying so would overstate what was seen.
    viewed = set(
        Reveal.objects.filter(media_id__in=media_ids, frame__isnull=True).values_list(
            "media_id", flat=True
        )
    )
    holds = LegalHold.objects.filter(case__in=cases, released_at__isnull=True)
    held_cases = set(holds.values_list("case_id", flat=True))
    held_until = max((h.expires_at for h in holds), default=None)
    decisions = [
        d
        for c in cases
        for d in c.decisions.prefetch_related("categories").order_by("created_at", "id")
    ]
    escalation: Escalation | None = packet.escalation
    principles = sorted(
        {n for d in decisions for n in d.principles}
        | {p.number for c in cases if c.category for p in c.category.principles.all()}
        | {12}
    )
    timeline = sorted(
        [
            {"at": _iso(i.created_at), "event": f"{i.kind} {i.source}:{i.external_id} flagged"}
            for i in items
        ]
        + [
            {"at": _iso(d.created_at), "event": f"decision on {d.case.reference}: {d.outcome}"}
            for d in decisions
        ]
        + (
            [{"at": _iso(escalation.opened_at), "event": "escalated: " + escalation.tier}]
            if escalation
            else []
        )
        + (
            [{"at": _iso(escalation.called_at), "event": "999 called by a safety lead"}]
            if escalation and escalation.called_at
            else []
        ),
        key=lambda e: (e["at"], e["event"]),
    )
    destination = packet.destination
    org = settings.SAFEGUARD_ORG_NAME
    document: dict[str, Any] = {
        "schema_version": "1.0",
        "reference": packet.reference,
        "generated_at": _iso(packet.approved_at or packet.created_at),
        "destination": {
            "name": destination.name,
            "kind": destination.kind,
            "jurisdiction": destination.jurisdiction,
            "mode": destination.mode,
            **({"police_force": destination.police_force} if destination.police_force else {}),
        },
        "priority": packet.priority,
        "reporting_organisation": {
            "name": org,
            "contact_point": {
                "name": settings.SAFEGUARD_ORG_CONTACT_NAME,
                "email": settings.SAFEGUARD_ORG_CONTACT_EMAIL,
                **(
                    {"phone": settings.SAFEGUARD_ORG_CONTACT_PHONE}
                    if settings.SAFEGUARD_ORG_CONTACT_PHONE
                    else {}
                ),
            },
        },
        "incident": {"summary": packet.summary, "timeline": timeline},
        "suspects": _suspects(items),
        "victims": {
            "known": False,
            "details": "No victim identity is known to the provider; "
            "see the items and flags for context.",
        },
        "items": [_item_entry(i, viewed, held_cases) for i in items],
        "decisions": [
            {
                "case_reference": d.case.reference,
                "outcome": d.outcome,
                "categories": sorted(c.code for c in d.categories.all()),
                "principles": d.principles,
                "rationale": d.rationale,
                "decided_at": _iso(d.created_at),
            }
            for d in decisions
        ],
        "principles": principles,
        "preservation": {
            "status": "preserved under a legal hold" if held_cases else "not preserved",
            "held_until": _iso(held_until),
            "how_to_request": f"Contact {settings.SAFEGUARD_ORG_CONTACT_NAME} "
            f"<{settings.SAFEGUARD_ORG_CONTACT_EMAIL}> quoting "
            f"{packet.reference}. The original files are preserved and are "
            "never attached to a referral.",
        },
        "emergency_call": (
            {
                "called_at": _iso(escalation.called_at),
                "police_force": escalation.police_force,
                "incident_reference": escalation.incident_reference,
                "acknowledged_at": _iso(escalation.acknowledged_at),
                "flagged_at": _iso(escalation.opened_at),
            }
            if escalation and escalation.called_at
            else None
        ),
        "declaration": f"{org} declares that this referral contains all information reasonably "
        "available to it about the incident at the time of reporting. It "
        "contains no images or video.",
    }
    if destination.kind == "nca_ceop":
        document["nca_schedule_1"] = {
            "submitter": f"{org}; contact {settings.SAFEGUARD_ORG_CONTACT_NAME} "
            f"<{settings.SAFEGUARD_ORG_CONTACT_EMAIL}>",
            "content": f"{len(items)} item(s); hashes and metadata in `items` (no imagery)",
            "further_information": packet.summary,
            "user_identified": "; ".join(
                f"{s['source']}:{s['account_id']}" for s in document["suspects"]
            )
            or "none identified",
            "identity_documents_held": "none held by the provider",
            "other_available_information": "decisions, flags and the chain of custody are "
            "included (decisions, custody.json)",
            "declaration": document["declaration"],
        }
    return document


# --- summary.pdf ------------------------------------------------------------------------------


def _latin1(text: str) -> str:
    # The PDF's core fonts are Latin-1; replace anything else rather than fail the build.
    return (
        text.replace("\u2014", "-")
        .replace("\u2026", "...")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


def _wrap(pdf: Any, text: str, width: float) -> list[str] | None:
    """Greedy word wrap with the core font's metrics, linear in the text's length. fpdf2's
    multi_cell re-measures the whole line for every character it adds (quadratic: two thirds
    of a 100-item build). None when one word is wider than the line: multi_cell breaks it."""
    space = pdf.get_string_width(" ")
    rows: list[str] = []
    for paragraph in text.split("\n"):
        row: list[str] = []
        row_width = 0.0
        for word in paragraph.split(" "):
            word_width = pdf.get_string_width(word)
            if word_width > width:
                return None
            if row and row_width + space + word_width > width:
                rows.append(" ".join(row))
                row, row_width = [word], word_width
            else:
                row_width += (space if row else 0.0) + word_width
                row.append(word)
        rows.append(" ".join(row))
    return rows


def render_pdf(document: dict[str, Any]) -> bytes:
    """A two-minute read for an officer: reference, priority, summary, items, 999 record."""
    # Imported here, not at the top: fpdf2 takes ~0.35 s to import and only a build needs it,
    # while this module is imported by every process (ready() → tasks → packets → builder).
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(f"Referral {document['reference']}")
    pdf.set_author(document["reporting_organisation"]["name"])
    pdf.set_creator("Safeguard")
    pdf.set_producer("Safeguard")
    pdf.set_creation_date(datetime.fromisoformat(document["generated_at"].replace("Z", "+00:00")))
    pdf.file_id = lambda: ""  # type: ignore[method-assign] — no random ID: deterministic
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    def line(text: str, size: int = 10, style: str = "") -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        height = size * 0.5 + 1
        rows = _wrap(pdf, _latin1(text), pdf.epw - 2 * pdf.c_margin)
        if rows is None:
            pdf.multi_cell(0, height, _latin1(text), new_x="LMARGIN", new_y="NEXT")
            return
        for row in rows:
            pdf.cell(0, height, row, new_x="LMARGIN", new_y="NEXT")

    line(f"Referral {document['reference']}", 16, "B")
    line(f"Priority: {document['priority'].upper()}", 12, "B")
    dest = document["destination"]
    line(f"To: {dest['name']} ({dest['kind']}, {dest['jurisdiction']}) - mode {dest['mode']}")
    org = document["reporting_organisation"]
    line(f"From: {org['name']} - {org['contact_point']['name']} <{org['contact_point']['email']}>")
    line(f"Generated: {document['generated_at']} (UTC)")
    line(
        "This referral contains no images or video. Preserved originals are available on "
        "request (see Preservation).",
        9,
        "I",
    )
    if document["emergency_call"]:
        call = document["emergency_call"]
        line("999 call", 12, "B")
        line(
            f"Called {call['called_at']} - {call['police_force']} - incident reference "
            f"{call['incident_reference']}"
        )
    line("Summary", 12, "B")
    line(document["incident"]["summary"])
    line("Cases", 12, "B")
    for ref in sorted({i["case_reference"] for i in document["items"]}):
        line(f"Case reference {ref}")
    line("Suspect accounts", 12, "B")
    for s in document["suspects"] or [{"source": "-", "account_id": "none identified"}]:
        line(
            f"{s['source']}: {s['account_id']} {s.get('username', '')} "
            f"{', '.join(s.get('ip_addresses', []))}"
        )
    line("Items", 12, "B")
    for i in document["items"]:
        file_info = i.get("file")
        line(
            f"{i['case_reference']} - {i['kind']} {i['source']}:{i['external_id']} - "
            f"received {i['received_at']} - public: {i['publicly_available']} - viewed by "
            f"provider: {i['viewed_by_provider']}",
            9,
        )
        if file_info:
            line(f"  SHA-256 {file_info['hashes']['sha256']}", 8)
            video = file_info.get("video")
            if video:
                line(
                    f"  video {video['duration']:.1f} s, {video.get('codec') or '-'}, "
                    f"{len(video['frames'])} frame hashes (vPDQ) in referral.json",
                    8,
                )
        for m in i.get("matches", []):
            where = "; ".join(
                f"{seg['query_start']:.0f}-{seg['query_end']:.0f} s"
                for seg in m.get("segments", [])
            )
            line(
                f"  matched {m['list']} ({m['algorithm']}, distance {m['distance']}, "
                f"category {m.get('provider_category') or '-'})"
                + (f" at {where}" if where else ""),
                8,
            )
    line("Decisions", 12, "B")
    for d in document["decisions"]:
        line(
            f"{d['case_reference']}: {d['outcome']} - {', '.join(d['categories'])} - "
            f"principles {', '.join(map(str, d['principles']))}",
            9,
        )
    line("Preservation", 12, "B")
    line(f"{document['preservation']['status']}; {document['preservation']['how_to_request']}")
    line("Declaration", 12, "B")
    line(document["declaration"], 9)
    return bytes(pdf.output())


# --- custody.json and NCMEC XML -----------------------------------------------------------------


def custody_log(packet: ReferralPacket) -> list[dict[str, Any]]:
    """The audit trail of every case, item and media in the packet: who did what, when."""
    # Seal everything committed so far, so every event in the log carries its chain hash (what
    # the `core.seal_audit_chain` task does; a service calls the service, not the task).
    while audit_seal():
        pass
    cases = list(packet.cases.all())
    items = Item.objects.filter(case__in=cases)
    item_ids = [str(pk) for pk in items.values_list("pk", flat=True)]
    media_ids = [
        str(pk) for pk in items.filter(media__isnull=False).values_list("media__pk", flat=True)
    ]
    case_ids = [str(c.pk) for c in cases]
    decision_ids = [str(pk) for c in cases for pk in c.decisions.values_list("pk", flat=True)]
    events = (
        AuditEvent.objects.filter(
            Q(object_type="moderation.case", object_id__in=case_ids)
            | Q(object_type="moderation.decision", object_id__in=decision_ids)
            | Q(object_type="moderation.item", object_id__in=item_ids)
            | Q(object_type="moderation.media", object_id__in=media_ids)
            | Q(object_type="reports.referralpacket", object_id=str(packet.pk))
        )
        .filter(created_at__lte=packet.approved_at or packet.created_at)
        .order_by("id")
    )
    keep = ("sha256", "size", "mime", "reason", "case", "outcome", "list", "distance")
    return [
        {
            "at": _iso(e.created_at),
            "actor": e.actor_label,
            "action": e.verb,
            "object": f"{e.object_type}:{e.object_id}",
            "audit_hash": e.hash,
            "details": {k: e.data[k] for k in keep if k in e.data},
        }
        for e in events
    ]


def ncmec_xml(document: dict[str, Any]) -> bytes:
    """The CyberTipline report fields for the same data (adapter; dry-run unless enabled)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<report>",
        "  <incidentSummary>",
        "    <incidentType>Child Pornography (possession, "
        "manufacture, and distribution)</incidentType>",
        f"    <incidentDateTime>{escape(document['generated_at'])}</incidentDateTime>",
        "  </incidentSummary>",
        "  <reporter>",
        f"    <reportingPerson><email>"
        f"{escape(document['reporting_organisation']['contact_point']['email'])}</email>"
        "</reportingPerson>",
        "  </reporter>",
    ]
    for s in document["suspects"]:
        out += [
            "  <reportedPerson>",
            f"    <espIdentifier>{escape(s['account_id'])}</espIdentifier>",
            f"    <screenName>{escape(s.get('username', ''))}</screenName>",
        ]
        out += [
            f"    <ipCaptureEvent><ipAddress>{escape(ip)}</ipAddress></ipCaptureEvent>"
            for ip in s.get("ip_addresses", [])
        ]
        out += ["  </reportedPerson>"]
    for i in document["items"]:
        f = i.get("file")
        if not f:
            continue
        out += [
            "  <fileDetails>",
            f"    <originalFileName>{escape(f['original_file_name'])}</originalFileName>",
            f"    <fileViewedByEsp>{str(i['viewed_by_provider']).lower()}</fileViewedByEsp>",
            f"    <publiclyAvailable>{str(bool(i['publicly_available'])).lower()}"
            "</publiclyAvailable>",
        ]
        out += [
            f'    <fileHash hashType="{k.upper()}">{escape(v)}</fileHash>'
            for k, v in sorted(f["hashes"].items())
            if isinstance(v, str)
        ]
        out += ["  </fileDetails>"]
    out.append("</report>")
    return ("\n".join(out) + "\n").encode()


# --- The zip ----------------------------------------------------------------------------------


def packet_files(packet: ReferralPacket) -> dict[str, bytes]:
    """Every file of the packet, name → bytes, before the manifest."""
    document = referral_document(packet)
    validate_referral(document)
    files = {
        "referral.json": _canonical(document),
        "summary.pdf": render_pdf(document),
        "custody.json": _canonical(custody_log(packet)),
        "signing-key.pub": signing.public_key_pem(),
        "README.txt": (
            f"Referral {packet.reference} from {settings.SAFEGUARD_ORG_NAME}.\n"
            "referral.json follows the JSON Schema referral-v1 (schema_version 1.0)."
            "\nmanifest.json lists the SHA-256 of every file; manifest.sig is an "
            "Ed25519 signature over manifest.json.\nVerify with: python manage.py "
            "verify_packet PACKET.zip\nThis packet contains no images or video.\n"
        ).encode(),
    }
    if packet.destination.kind == "ncmec":
        files["cybertipline.xml"] = ncmec_xml(document)
    return {name: _refuse_media(name, data) for name, data in files.items()}


def manifest_for(packet: ReferralPacket, files: dict[str, bytes]) -> bytes:
    manifest = {
        "packet": packet.reference,
        "schema_version": "1.0",
        "algorithm": "sha256",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "signing_key_sha256": signing.fingerprint(),
    }
    return _canonical(manifest)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def build_packet_zip(packet: ReferralPacket) -> tuple[bytes, str]:
    """The whole signed zip and its manifest's SHA-256."""
    files = packet_files(packet)
    manifest = manifest_for(packet, files)
    files["manifest.json"] = manifest
    files["manifest.sig"] = signing.sign(manifest).hex().encode() + b"\n"
    return zip_bytes(files), hashlib.sha256(manifest).hexdigest()
