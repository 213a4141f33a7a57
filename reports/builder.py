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

import jsonschema
from django.conf import settings
from django.db.models import Q

from core.audit import audit_seal
from core.checkpoints import checkpoint_covering
from core.models import AuditEvent
from core.text import visible_controls
from moderation.models import Case, Escalation, Item, LegalHold, Reveal
from principles.selectors import principle_labels

from . import signing
from .models import ReferralPacket
from .ncmec import cybertipline_xml

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "referral-v1.schema.json"
SCHEMA_VERSION = "1.1"
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
    """The user(s) the items came from, as the CSEA reporting regulations define a user: the
    account, its names and contact details, each IP address with its port and when it was
    seen, the account's age and its connections with other accounts."""
    accounts: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if not item.subject_account_id:
            continue
        entry = accounts.setdefault(
            (item.source, item.subject_account_id),
            {
                "source": item.source,
                "account_id": item.subject_account_id,
                "username": "",
                "display_name": "",
                "email": "",
                "phone": "",
                "ip_events": [],
                "ip_addresses": [],
                "ports": [],
                "countries": [],
                "account_created_at": None,
                "linked_accounts": [],
            },
        )
        # The latest item that states a value wins (items are in arrival order).
        for key, field in (
            ("username", "subject_username"),
            ("display_name", "subject_display_name"),
            ("email", "subject_email"),
            ("phone", "subject_phone"),
        ):
            value = getattr(item, field, "") or ""
            if value:
                entry[key] = value
        if item.subject_account_created_at:
            entry["account_created_at"] = _iso(item.subject_account_created_at)
        if item.subject_ip:
            event = {
                "ip_address": item.subject_ip,
                "port": item.subject_port,
                "seen_at": _iso(getattr(item, "subject_ip_seen_at", None)),
            }
            if event not in entry["ip_events"]:
                entry["ip_events"].append(event)
            if item.subject_ip not in entry["ip_addresses"]:
                entry["ip_addresses"].append(item.subject_ip)
        if item.subject_port and item.subject_port not in entry["ports"]:
            entry["ports"].append(item.subject_port)
        if item.subject_country and item.subject_country not in entry["countries"]:
            entry["countries"].append(item.subject_country)
        for linked in getattr(item, "subject_linked_accounts", None) or []:
            if linked not in entry["linked_accounts"]:
                entry["linked_accounts"].append(linked)
    return [accounts[k] for k in sorted(accounts)]


def authorised_person() -> dict[str, str]:
    """The person registered with the NCA's reporting service who submits the organisation's
    reports (Schedule 1 para 1), from the installation's settings."""
    return {
        "name": settings.SAFEGUARD_NCA_AUTHORISED_PERSON_NAME,
        "role": settings.SAFEGUARD_NCA_AUTHORISED_PERSON_ROLE,
        "email": settings.SAFEGUARD_NCA_AUTHORISED_PERSON_EMAIL,
        "phone": settings.SAFEGUARD_NCA_AUTHORISED_PERSON_PHONE,
    }


def _person_label(user: Any) -> str:
    if user is None:
        return ""
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return f"{full} ({user.get_username()})" if full else user.get_username()


def _incident_category(cases: list[Case], decisions: list[Any]) -> tuple[str | None, list[str]]:
    """The cases' harm categories, most urgent first (the case's own, then decisions')."""
    found: dict[str, tuple[int, str]] = {}
    for case in cases:
        if case.category is not None:
            found[case.category.code] = (case.category.default_priority, case.category.code)
    for decision in decisions:
        for category in decision.categories.all():
            found.setdefault(category.code, (category.default_priority, category.code))
    ordered = [code for _, code in sorted(found.values())]
    return (ordered[0] if ordered else None), ordered


def _incident_time(items: list[Item], now: datetime) -> datetime | None:
    """When it happened: the latest item's own time (or its arrival), never in the future."""
    times = [i.occurred_at or i.created_at for i in items]
    latest = max(times, default=None)
    return min(latest, now) if latest else None


def _nca_schedule_1(
    packet: ReferralPacket, document: dict[str, Any], items: list[Item]
) -> dict[str, Any]:
    """The report's content heading by heading, as Schedule 1 to the Online Safety Act 2023
    (CSEA content reporting) regulations lists it, built from the case data."""
    identity = packet.identity_documents
    detail = packet.identity_documents_detail
    content = []
    for entry in document["items"]:
        row: dict[str, Any] = {
            "case_reference": entry["case_reference"],
            "kind": entry["kind"],
            "received_at": entry["received_at"],
            "occurred_at": entry["occurred_at"],
            "publicly_available": entry["publicly_available"],
            "viewed_by_provider": entry["viewed_by_provider"],
        }
        if "url" in entry:
            row["url"] = entry["url"]
        file = entry.get("file")
        if file:
            row["file_type"] = file["mime"]
            row["size_bytes"] = file["size"]
            row["hashes"] = {k: v for k, v in file["hashes"].items() if isinstance(v, str)}
            if file.get("exif"):
                row["exif"] = file["exif"]
        if entry.get("matches"):
            row["matched_lists"] = sorted({m["list"] for m in entry["matches"]})
        content.append(row)
    incident = document["incident"]
    return {
        "staging_notice": "Staging copy for the NCA's CSEA reporting service: the authorised "
        "person enters or uploads this content there. The NCA's reference is recorded on "
        f"{packet.reference} once submitted.",
        "authorised_person": {
            **document["authorised_person"],
            "organisation": document["reporting_organisation"]["name"],
        },
        "detected_content": content,
        "further_information": {
            "summary": packet.summary,
            "harm_categories": incident["categories"],
            "priority_handling": packet.priority == ReferralPacket.Priority.IMMEDIATE,
            "priority_reason": incident.get("escalation_reason"),
            "detected_at": incident["detected_at"],
            "incident_at": incident["occurred_at"],
        },
        "user_identified": document["suspects"],
        "identity_documents": {
            "status": identity or "not recorded",
            "detail": detail,
            "recorded_by": _person_label(packet.drafted_by),
        },
        "other_available_information": "Moderation decisions, flags, hash-list matches, the "
        "chain of custody (custody.json) and the preserved originals, available on request "
        "(see preservation).",
        "declaration": {
            "text": document["declaration"],
            "confirmed_by": _person_label(packet.approved_by),
            "confirmed_at": _iso(packet.declaration_confirmed_at),
        },
        "recipient_reference": packet.external_reference or None,
    }


def referral_document(packet: ReferralPacket) -> dict[str, Any]:
    """The referral.json content for a packet, from the database (text and hashes only)."""
    cases = list(packet.cases.select_related("category").order_by("id"))
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
    # The principles the content evidences: those of its decisions and harm categories.
    principles = sorted(
        {n for d in decisions for n in d.principles}
        | {p.number for c in cases if c.category for p in c.category.principles.all()}
    )
    generated = packet.approved_at or packet.created_at
    category, categories = _incident_category(cases, decisions)
    incident_at = _incident_time(items, generated)
    escalation_reason = None
    if packet.priority == ReferralPacket.Priority.IMMEDIATE:
        escalation_reason = (
            escalation.reason
            if escalation is not None and escalation.reason
            else "A safety lead judged a child to be at immediate risk."
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
        "schema_version": SCHEMA_VERSION,
        "reference": packet.reference,
        "generated_at": _iso(generated),
        "destination": {
            "name": destination.name,
            **({"code": destination.code} if destination.code else {}),
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
        "authorised_person": authorised_person(),
        "incident": {
            "summary": packet.summary,
            "category": category,
            "categories": categories,
            "occurred_at": _iso(incident_at),
            "detected_at": _iso(packet.detected_at),
            "escalation_reason": escalation_reason,
            "timeline": timeline,
        },
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
        "principle_labels": {str(n): label for n, label in principle_labels().items()},
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
        document["nca_schedule_1"] = _nca_schedule_1(packet, document, items)
    return document


# --- summary.pdf ------------------------------------------------------------------------------


def _latin1(text: str) -> str:
    # The PDF's core fonts are Latin-1; replace anything else rather than fail the build.
    # Control characters (bidi overrides that disguise a file name) are shown, not obeyed.
    text = visible_controls(text, brackets="[]")
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
    if dest["mode"] == "dry_run":
        line("DRY RUN: built and checked; nothing was sent to the recipient.", 10, "B")
    schedule = document.get("nca_schedule_1")
    if schedule:
        line("NCA report (Schedule 1 headings)", 12, "B")
        line(schedule["staging_notice"], 9, "I")
        person = schedule["authorised_person"]
        line(
            f"1 Authorised person: {person['name'] or 'NOT CONFIGURED'}"
            f"{' - ' + person['role'] if person['role'] else ''} ({person['organisation']})",
            9,
        )
        line(f"2 Detected content: {len(schedule['detected_content'])} item(s), below", 9)
        further = schedule["further_information"]
        handling = (
            f"YES - {further['priority_reason'] or ''}" if further["priority_handling"] else "no"
        )
        line(
            f"3 Further information: detected {further['detected_at']}; incident "
            f"{further['incident_at']}; priority handling: {handling}",
            9,
        )
        line(f"4 User identified: {len(schedule['user_identified'])} account(s), below", 9)
        documents = schedule["identity_documents"]
        line(
            f"5 Identity documents: {documents['status'].replace('_', ' ')}"
            f"{' - ' + documents['detail'] if documents['detail'] else ''}",
            9,
        )
        line(f"6 Other information: {schedule['other_available_information']}", 9)
        declaration = schedule["declaration"]
        line(
            f"7 Declaration confirmed by {declaration['confirmed_by'] or '-'} at "
            f"{declaration['confirmed_at'] or '-'}",
            9,
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
        line(f"{s['source']}: {s['account_id']} {s.get('username', '')}")
        for event in s.get("ip_events", []):
            port = f":{event['port']}" if event.get("port") is not None else ""
            line(f"  IP {event['ip_address']}{port} seen {event.get('seen_at') or '-'}", 8)
        if s.get("linked_accounts"):
            line(f"  linked accounts: {', '.join(s['linked_accounts'])}", 8)
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


# --- custody.json -----------------------------------------------------------------------------


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
            "audit_seq": e.seq,
            "audit_hash": e.hash,
            "details": {k: e.data[k] for k in keep if k in e.data},
        }
        for e in events
    ]


def custody_document(packet: ReferralPacket) -> dict[str, Any]:
    """custody.json: the events, and the signed checkpoint of the audit chain's head that
    covers them (core.checkpoints), so the custody can later be shown to be unaltered even
    against someone who could rewrite the database."""
    events = custody_log(packet)
    last = max((e["audit_seq"] for e in events if e["audit_seq"] is not None), default=0)
    return {
        "events": events,
        "audit_checkpoint": checkpoint_covering(last) if last else None,
    }


# --- The zip ----------------------------------------------------------------------------------


def iwf_url_report(document: dict[str, Any]) -> dict[str, Any]:
    """What the IWF takes: reports of URLs (where the material can be found), each with what
    it is, when it was seen and its hashes, and who reports it. Items without a URL are left
    out (they go to the police or the NCA)."""
    org = document["reporting_organisation"]
    urls = []
    for entry in document["items"]:
        if "url" not in entry:
            continue
        row: dict[str, Any] = {
            "url": entry["url"],
            "content_type": entry["kind"],
            "harm_categories": sorted(
                {f["category"] for f in entry["flags"] if f["category"]}
                | {
                    m["provider_category"]
                    for m in entry.get("matches", [])
                    if m.get("provider_category")
                }
            ),
            "first_seen": entry["occurred_at"] or entry["received_at"],
            "publicly_available": entry["publicly_available"],
            "case_reference": entry["case_reference"],
        }
        file = entry.get("file")
        if file:
            row["hashes"] = {k: v for k, v in file["hashes"].items() if isinstance(v, str)}
        urls.append(row)
    return {
        "report_type": "url",
        "reference": document["reference"],
        "generated_at": document["generated_at"],
        "reporter": {
            "organisation": org["name"],
            "contact_name": org["contact_point"]["name"],
            "email": org["contact_point"]["email"],
            "anonymous": False,
        },
        "description": document["incident"]["summary"],
        "urls": urls,
        "note": "URLs and hashes only: no images or video are attached.",
    }


def packet_files(packet: ReferralPacket) -> dict[str, bytes]:
    """Every file of the packet, name → bytes, before the manifest."""
    document = referral_document(packet)
    validate_referral(document)
    kind = packet.destination.kind
    what = {
        "iwf": "iwf-url-report.json is the URL report to submit through the IWF's report "
        "route; referral.json is the full record.",
        "ncmec": "cybertipline.xml is the CyberTipline report (sent as it is by the ESP API "
        "client); referral.json is the full record.",
        "nca_ceop": "referral.json's nca_schedule_1 is the staging copy for the NCA's CSEA "
        "reporting service, heading by heading as Schedule 1 lists them.",
    }.get(kind, "summary.pdf is the two-minute read for an officer; referral.json the record.")
    files = {
        "referral.json": _canonical(document),
        "summary.pdf": render_pdf(document),
        "custody.json": _canonical(custody_document(packet)),
        "signing-key.pub": signing.public_key_pem(),
        "README.txt": (
            f"Referral {packet.reference} from {settings.SAFEGUARD_ORG_NAME}.\n{what}\n"
            f"referral.json follows the JSON Schema referral-v1 (schema_version "
            f"{SCHEMA_VERSION})."
            "\nmanifest.json lists the SHA-256 of every file; manifest.sig is an "
            "Ed25519 signature over manifest.json.\nVerify with: python manage.py "
            "verify_packet PACKET.zip\nThis packet contains no images or video.\n"
        ).encode(),
    }
    if packet.destination.mode == "dry_run":
        files["README.txt"] += (
            f"DRY RUN: {packet.destination.name} has no contact route configured; "
            "this packet was built and checked, and nothing was sent.\n"
        ).encode()
    if kind == "ncmec":
        files["cybertipline.xml"] = cybertipline_xml(document)
    if kind == "iwf":
        files["iwf-url-report.json"] = _canonical(iwf_url_report(document))
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
