"""Matches: record a media file's matches against hash lists (flag the item, raise its case),
and match already-hashed media against a changed list (retroactive rescan)."""

from __future__ import annotations

from django.db import transaction

from core.audit import WORKER, Actor, audit_record
from moderation.matching.banks import Candidate, FrameInput, match_all, match_frames
from moderation.models import Case, Flag, HashList, Item, KnownHash, Match, Media, MediaFrame
from moderation.services.quarantine import flood_check
from principles.models import HarmCategory


def matches_record(
    *, media: Media, candidates: list[Candidate], actor: Actor, flood_control: bool = True
) -> list[Match]:
    """Store matches (once per media x known hash), flag the item, and raise its case.

    A match to an enabled list adds a hash-match Flag and puts the case in the known-material
    category and priority (DESIGN.md §6), unless the case is already more urgent — except a
    match of a quarantined hash (moderation.services.quarantine), which is recorded and shown
    but raises nothing.
    """
    if not candidates:
        return []
    # Each statement here costs ~1 ms of the worker's CPU (profiled under load.py with a
    # known-hash list; benchmarks/LOAD.md): the case is locked and read once, with its category.
    lists = {
        hl.pk: hl for hl in HashList.objects.filter(pk__in={c.hash_list_id for c in candidates})
    }
    known = KnownHash.objects.in_bulk([c.known_hash_id for c in candidates])
    category = HarmCategory.objects.filter(code="known_csam").first()
    # Lock the case row before writing matches and flags: its priority is recomputed below from
    # its flags, and intake joining the case or a moderator deciding it must see all of this
    # or none. Case row first, as every writer of a case takes it.
    case_id = Item.objects.filter(pk=media.item_id).values_list("case_id", flat=True).first()
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("category")
        .filter(pk=case_id)
        .first()
        if case_id is not None
        else None
    )
    # Every writer of a media's matches holds its case's lock (hashing, rescans): what is
    # recorded already can be read once, and the new rows inserted without a savepoint each.
    existing = (
        set(
            Match.objects.filter(
                media=media, known_hash_id__in=[c.known_hash_id for c in candidates]
            ).values_list("known_hash_id", flat=True)
        )
        if case is not None
        else set()
    )
    made: list[Match] = []
    raising: list[Match] = []  # the matches that raise the case: not of a quarantined hash
    for c in candidates:
        hl = lists.get(c.hash_list_id)
        if hl is None or c.known_hash_id not in known or c.known_hash_id in existing:
            continue
        fields = {
            "hash_list": hl,
            "algorithm": c.algorithm,
            "distance": c.distance,
            "list_version": hl.version,
            "segments": [segment.as_json() for segment in c.segments],
            "transform": c.transform,
            "query_percent": c.query_percent,
            "listed_percent": c.listed_percent,
        }
        if case is not None:
            match = Match.objects.create(media=media, known_hash_id=c.known_hash_id, **fields)
        else:
            match, created = Match.objects.get_or_create(
                media=media, known_hash_id=c.known_hash_id, defaults=fields
            )
            if not created:
                continue
        existing.add(c.known_hash_id)
        # Flood control first: a perceptual hash that matches too many new items becomes
        # quarantined here (see flood_check for why not exact hashes, not rescans).
        if flood_control and not hl.is_exact:
            flood_check(known_hash_id=c.known_hash_id, actor=actor)
            quarantine = (
                KnownHash.objects.filter(pk=c.known_hash_id, quarantined_at__isnull=False)
                .values_list("quarantine_reason", flat=True)
                .first()
            )
        else:
            row = known[c.known_hash_id]
            quarantine = row.quarantine_reason if row.quarantined_at is not None else None
        made.append(match)
        if quarantine is None:
            raising.append(match)
        Flag.objects.create(
            item_id=media.item_id,
            source=Flag.Source.HASH_MATCH,
            # A quarantined hash's match is shown, but categorises and raises nothing.
            category=category if quarantine is None else None,
            match=match,
            note=f"{hl.name} ({hl.get_algorithm_display()}) distance "
            f"{c.distance}; provider category "
            f"{known[c.known_hash_id].category or '—'}"
            + _where(c)
            + (f"; hash quarantined ({quarantine}): no automatic action" if quarantine else ""),
        )
        audit_record(
            actor=actor,
            verb="match.recorded",
            obj=match,
            data={
                "media": media.pk,
                "list": hl.name,
                "list_version": hl.version,
                "algorithm": c.algorithm,
                "distance": c.distance,
                "provider_category": known[c.known_hash_id].category,
                "segments": match.segments,
                "transform": c.transform,
                "query_percent": c.query_percent,
                "listed_percent": c.listed_percent,
            },
        )
    if raising and case is not None and category is not None:
        changed = case.raise_priority(
            priority=category.default_priority,
            category=category,
            reason=f"known-hash match in {raising[0].hash_list.name}",
        )
        # A known match is *less* urgent than suspected-new material (P3 vs P2): the material
        # is verified and already blocked. Re-categorise when the case was only "new_csam".
        if case.category is not None and case.category.code == "new_csam":
            only_new = (
                not Flag.objects.filter(item__case=case)
                .exclude(source=Flag.Source.HASH_MATCH)
                .exclude(category__code="new_csam")
                .exists()
            )
            if only_new and not case.immediate_risk:
                case.category = category
                case.priority = category.default_priority
                changed += ["category", "priority"]
                changed += case.add_reason(
                    "verified known-hash match: known material, already blocked"
                )
                changed = list(dict.fromkeys(changed))
        if changed:
            case.save(update_fields=[*changed, "updated_at"])
    return made


def _frames_by_media(media_ids: list[int]) -> dict[int, list[FrameInput]]:
    out: dict[int, list[FrameInput]] = {}
    rows = MediaFrame.objects.filter(media_id__in=media_ids).order_by("media_id", "frame")
    for media_id, timestamp, quality, pdq in rows.values_list(
        "media_id", "timestamp", "quality", "pdq"
    ):
        out.setdefault(media_id, []).append(FrameInput(timestamp, quality, pdq))
    return out


def media_rescan_batch(
    *, hash_list_id: int, after_id: int, batch_size: int = 500, actor: Actor = WORKER
) -> int | None:
    """Retroactive matching: match already-hashed media against one (changed) list.

    Processes one batch of media after `after_id`; returns the cursor for the next batch, or
    None when done. The task re-enqueues itself with the cursor.
    """
    hash_list = HashList.objects.filter(pk=hash_list_id, enabled=True).first()
    if hash_list is None:
        return None
    field = hash_list.algorithm
    batch = list(
        Media.objects.filter(pk__gt=after_id, hash_status=Media.HashStatus.DONE).order_by("pk")[
            :batch_size
        ]
    )
    if not batch:
        return None
    frames_of = _frames_by_media([m.pk for m in batch]) if field in ("pdq", "vpdq") else {}
    for media in batch:
        values = {
            "sha256": media.sha256,
            "md5": media.md5,
            "sha1": media.sha1,
            "pdq": media.pdq,
            "phash": media.phash,
            "dhash": media.dhash,
        }
        candidates = (
            match_all(
                values,
                pdq_quality=media.pdq_quality,
                pdq_dihedral=media.pdq_dihedral,
                only_list=hash_list,
            )
            if values.get(field)
            else []
        )
        frames = frames_of.get(media.pk)
        if frames:
            candidates += match_frames(frames, only_list=hash_list)
        if candidates:
            with transaction.atomic():
                matches_record(media=media, candidates=candidates, actor=actor, flood_control=False)
    return batch[-1].pk


def _where(candidate: Candidate) -> str:
    """How and where the media matched, for the flag's note: a rotation or mirror; in a
    video, its first segments in seconds."""
    if candidate.transform:
        return f"; as a {candidate.transform.replace('_', ' ')} copy"
    if not candidate.segments:
        return ""
    spans = ", ".join(
        f"{_clock(segment.query_start)}\u2013{_clock(segment.query_end)}"  # an en dash
        for segment in candidate.segments[:3]
    )
    more = f" (+{len(candidate.segments) - 3} more)" if len(candidate.segments) > 3 else ""
    shares = (
        f"; {candidate.listed_percent:.0f}% of the listed video, "
        f"{candidate.query_percent:.0f}% of this one"
        if candidate.listed_percent is not None and candidate.query_percent is not None
        else ""
    )
    return f"; at {spans}{more}{shares}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
