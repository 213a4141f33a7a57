"""Search: the cases a person may see, found by reference, external id, subject id or username,
hash (any algorithm, PDQ within a distance), text, category, status and when items arrived.

Reads only. Every result goes through `selectors.case_visible_to(user)`, and so does every
count: a moderator never learns that a restricted case matched, not even as a total.

How each part matches:

* **Free text** (`query`, the box in the top bar) matches any of: item text, URL, external id,
  subject account id and username (full-text search with the `simple` configuration on
  PostgreSQL, no stemming, so ids survive; a case-insensitive substring on SQLite, the embedded
  demo); a case reference (`SG-000123`); and, when it looks like one, a hash. The vector is
  computed per query (no GIN index yet): a sequential scan of the items, fine into the hundreds
  of thousands; add an expression index on the same vector before it is not.
* **Exact fields** narrow the results: reference, external id, subject (account id, or
  username without regard to case or a leading @), hash.
* **Hashes** are told apart by length: 64 hex digits are SHA-256 or PDQ, 40 SHA-1, 32 MD5,
  16 pHash or dHash; all match exactly. A 64-digit hash also finds media whose PDQ is within
  `distance` bits (default 31, Meta's usual match threshold for PDQ). Media whose PDQ quality is
  under the floor the hash lists use (`PDQ_QUALITY_FLOOR`) match only exactly: flat images
  hash alike.
* **Near PDQ search** scans the media of the cases the person may see, in the database on
  PostgreSQL (`bit_count` over the XOR of the two hashes as bit strings), in numpy on other
  databases (`matching.index.brute_force`, in chunks). The hash-list index of
  `moderation.matching` is built per list from known hashes, not from received media, so it
  cannot answer this. Measured at a million random hashes: 1.7 s on PostgreSQL 15 (two
  parallel workers), 1.8 s in numpy including parsing; well under that at the sizes most
  platforms hold. Past a few million media, a `HammingIndex` over media built by a worker
  (as the banks are) is the next step; a search is one person waiting on one page, not the
  intake path, so a scan is the simpler right answer until then.
* **Filters** (category, status, received from/to) apply on top; received dates bound the
  items every item-based part looks at.

Results are cases, newest first, 50 a page, each with why it matched.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import reduce
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import Count, F, Func, IntegerField, Max, Min, Q, QuerySet, Value
from django.utils import timezone

from .matching.index import brute_force, hex_to_codes
from .models import PDQ_QUALITY_FLOOR, Case, Item, Media
from .selectors import case_visible_to

SEARCH_PAGE_SIZE = 50
PDQ_DEFAULT_DISTANCE = 31
PDQ_MAX_DISTANCE = 64
# Near matches kept per search (closest first): past this the hash is not selective, and a
# list of case ids in the query would only grow.
PDQ_NEAR_LIMIT = 5_000
# The GET parameters of the search page (a saved search keeps these and no others).
SEARCH_PARAMS = (
    "q",
    "reference",
    "external_id",
    "subject",
    "hash",
    "distance",
    "category",
    "status",
    "from",
    "to",
)
# Item fields free text looks in, with the name a result gives for a match there.
TEXT_FIELDS: dict[str, str] = {
    "text": "item text",
    "url": "URL",
    "external_id": "external id",
    "subject_account_id": "subject id",
    "subject_username": "username",
}
# "active" is the queue's "open and in review".
STATUS_CHOICES = (("active", "Open and in review"), *Case.Status.choices)

_REFERENCE = re.compile(r"^\s*SG-?0*(\d{1,12})\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*0*(\d{1,12})\s*$")
_HEX = re.compile(r"^[0-9a-f]+$")
# Hash length in hex digits → the Media fields that may hold it, with their display names.
_HASH_FIELDS: dict[int, tuple[tuple[str, str], ...]] = {
    64: (("sha256", "SHA-256"), ("pdq", "PDQ")),
    40: (("sha1", "SHA-1"),),
    32: (("md5", "MD5"),),
    16: (("phash", "pHash"), ("dhash", "dHash")),
}


class SearchInputError(ValueError):
    """A search value that cannot be what it claims (a malformed hash or reference)."""


@dataclass(frozen=True)
class SearchFilters:
    """Everything but the free text. Empty strings and None mean "any"."""

    reference: str = ""
    external_id: str = ""
    subject: str = ""
    hash: str = ""
    distance: int = PDQ_DEFAULT_DISTANCE
    category: str = ""
    status: str = ""
    received_from: date | None = None
    received_to: date | None = None

    @property
    def narrows(self) -> bool:
        return any(
            (
                self.reference,
                self.external_id,
                self.subject,
                self.hash,
                self.category,
                self.status,
                self.received_from,
                self.received_to,
            )
        )


@dataclass
class SearchHit:
    """One result row: the case and why it matched (never media)."""

    case: Case
    reasons: list[str] = field(default_factory=list)
    items: int = 0
    received_at: datetime | None = None


@dataclass(frozen=True)
class _Part:
    """One way a case can match, for saying why it did: through its items (`items`, checked
    against the page's items only) or as a condition on cases (`q`). `labels` names the match
    per case where that varies (the PDQ distance)."""

    label: str
    items: QuerySet[Item] | None = None
    q: Q | None = None
    labels: Mapping[int, str] | None = None

    def as_q(self) -> Q:
        if self.q is not None:
            return self.q
        assert self.items is not None, "a part matches through items or a condition"
        return Q(pk__in=self.items.values("case_id"))

    def explain(self, case_ids: list[int]) -> dict[int, str]:
        if self.items is not None:
            found = self.items.filter(case_id__in=case_ids).values_list("case_id", flat=True)
        else:
            found = Case.objects.filter(self.as_q(), pk__in=case_ids).values_list("pk", flat=True)
        return {pk: (self.labels or {}).get(pk, self.label) for pk in found}


@dataclass(frozen=True)
class _Group:
    """A condition every result meets: any one of its parts. `q` may be one cheaper query
    for the whole group (free text reads every field in one pass)."""

    parts: list[_Part]
    q: Q | None = None

    def as_q(self) -> Q:
        if self.q is not None:
            return self.q
        return reduce(operator.or_, (part.as_q() for part in self.parts))


def parse_reference(value: str, *, bare_number: bool = False) -> int | None:
    """The case id in a reference (`SG-000123`, `sg123`; a bare number if allowed), or None."""
    match = _REFERENCE.match(value) or (_BARE_NUMBER.match(value) if bare_number else None)
    return int(match.group(1)) if match else None


def normalise_hash(value: str) -> str:
    """A hash as the media table stores it (lower-case hex), or SearchInputError."""
    cleaned = value.strip().lower()
    if not _HEX.match(cleaned) or len(cleaned) not in _HASH_FIELDS:
        raise SearchInputError(
            "A hash is 16 (pHash, dHash), 32 (MD5), 40 (SHA-1) or 64 (SHA-256, PDQ) hex digits."
        )
    return cleaned


def looks_like_hash(value: str) -> bool:
    try:
        normalise_hash(value)
    except SearchInputError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Free text
# --------------------------------------------------------------------------------------------


def items_matching_text(items: QuerySet[Item], query: str, *fields: str) -> QuerySet[Item]:
    """Items where any of `fields` matches free text: full-text search on PostgreSQL, the
    substring fallback elsewhere."""
    if connections[items.db].vendor == "postgresql":
        return items_matching_text_fts(items, query, *fields)
    return items_matching_text_fallback(items, query, *fields)


def items_matching_text_fts(items: QuerySet[Item], query: str, *fields: str) -> QuerySet[Item]:
    """PostgreSQL full-text search over `fields` as one document, with the `simple`
    configuration (words as written: no stemming or stop words, so `user-42` and `ext-7` stay
    searchable) and web-search syntax ("quoted phrases", or, -not)."""
    return items.alias(_fts=SearchVector(*fields, config="simple")).filter(
        _fts=SearchQuery(query, config="simple", search_type="websearch")
    )


def items_matching_text_fallback(items: QuerySet[Item], query: str, *fields: str) -> QuerySet[Item]:
    """The embedded (SQLite) fallback: the whole query as a case-insensitive substring of any
    of `fields`."""
    needle = query.strip()
    return items.filter(
        reduce(operator.or_, (Q(**{f"{name}__icontains": needle}) for name in fields))
    )


# --------------------------------------------------------------------------------------------
# Near PDQ
# --------------------------------------------------------------------------------------------


class _PdqDistance(Func):
    """Hamming distance between a 64-hex-digit PDQ column and a PDQ (PostgreSQL 14+).

    Each side is read as a 256-bit string (`'x' || hex`), XOR-ed, and its ones counted. The
    CASE keeps an empty (not yet hashed) column away from the cast, which would fail.
    """

    output_field = IntegerField()

    def __init__(self, column: str, pdq: str) -> None:
        super().__init__(F(column), Value(pdq))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column_sql, column_params = compiler.compile(self.source_expressions[0])
        pdq_sql, pdq_params = compiler.compile(self.source_expressions[1])
        sql = (
            f"CASE WHEN length({column_sql}) = 64 THEN bit_count(('x' || {column_sql})::bit(256)"
            f" # ('x' || ({pdq_sql})::text)::bit(256)) END"
        )
        return sql, [*column_params, *column_params, *pdq_params]


def _quality_ok(quality: int | None) -> bool:
    return quality is None or quality >= PDQ_QUALITY_FLOOR


def pdq_near_sql(media: QuerySet[Media], pdq: str, distance: int) -> dict[int, int]:
    """PostgreSQL: {case id: best distance} for media within `distance` bits of `pdq`,
    computed in the database."""
    rows = (
        media.alias(pdq_distance=_PdqDistance("pdq", pdq))
        .filter(
            Q(pdq_distance=0)
            | (
                Q(pdq_distance__lte=distance)
                & (Q(pdq_quality__isnull=True) | Q(pdq_quality__gte=PDQ_QUALITY_FLOOR))
            )
        )
        .values("item__case_id")
        .annotate(best=Min("pdq_distance"))
        .order_by("best", "item__case_id")[:PDQ_NEAR_LIMIT]
    )
    return {row["item__case_id"]: row["best"] for row in rows}


def pdq_near_scan(
    media: QuerySet[Media], pdq: str, distance: int, *, chunk_size: int = 10_000
) -> dict[int, int]:
    """Any database: {case id: best distance} for media within `distance` bits of `pdq`.

    1. Stream (case id, PDQ, quality) in chunks; skip media not hashed yet.
    2. Per chunk, XOR and popcount every hash against the query (`brute_force`, numpy).
    3. Keep hits: any quality at distance 0, the quality floor above it; best per case.
    """
    best: dict[int, int] = {}

    def scan(batch: list[tuple[int, str, int | None]]) -> None:
        codes = hex_to_codes([pdq_hex for _, pdq_hex, _ in batch], 256)
        for row, found in brute_force(codes, pdq, distance):
            case_id, _, quality = batch[row]
            if found == 0 or _quality_ok(quality):
                best[case_id] = min(found, best.get(case_id, found))

    batch: list[tuple[int, str, int | None]] = []
    rows = media.exclude(pdq="").values_list("item__case_id", "pdq", "pdq_quality")
    for case_id, pdq_hex, quality in rows.iterator(chunk_size=chunk_size):
        if case_id is None or len(pdq_hex) != 64:
            continue
        batch.append((case_id, pdq_hex.lower(), quality))
        if len(batch) >= chunk_size:
            scan(batch)
            batch = []
    if batch:
        scan(batch)
    closest = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))[:PDQ_NEAR_LIMIT]
    return dict(closest)


def pdq_near(media: QuerySet[Media], pdq: str, distance: int) -> dict[int, int]:
    if connections[media.db].vendor == "postgresql":
        return pdq_near_sql(media, pdq, distance)
    return pdq_near_scan(media, pdq, distance)


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class CaseSearch:
    """One search for one person: build once, then read the cases (a queryset), a page of
    hits, or why given cases matched.

    Parts come in groups: a case must satisfy every group, and any one part within a group
    (free text is one group whose parts are the text fields, a reference and a hash).
    """

    def __init__(self, user: Any, query: str = "", filters: SearchFilters | None = None) -> None:
        self.user = user
        self.query = query.strip()
        self.filters = filters or SearchFilters()
        self.visible = case_visible_to(user)
        self.items = self._items()
        self.groups = self._groups()

    @property
    def is_empty(self) -> bool:
        """Nothing asked: no search is run (a page of every case is the queue's job)."""
        return not self.query and not self.filters.narrows

    def _items(self) -> QuerySet[Item]:
        f = self.filters
        # Only items of cases the person may see, so no later step (the PDQ scan in
        # particular) ever reads another case's media.
        items = Item.objects.filter(case__in=self.visible)
        if f.received_from:
            items = items.filter(created_at__gte=_day_start(f.received_from))
        if f.received_to:
            items = items.filter(created_at__lt=_day_start(f.received_to + timedelta(days=1)))
        return items

    def _text_group(self) -> _Group:
        text = self.query
        parts = [
            _Part(label, items=items_matching_text(self.items, text, name))
            for name, label in TEXT_FIELDS.items()
        ]
        # One pass over the items for all the fields; the per-field parts only explain a page.
        everywhere = items_matching_text(self.items, text, *TEXT_FIELDS)
        q = Q(pk__in=everywhere.values("case_id"))
        reference = parse_reference(text)
        if reference is not None:
            reference_part = self._reference_part(reference)
            parts.append(reference_part)
            q |= reference_part.as_q()
        if looks_like_hash(text):
            hash_parts = self._hash_parts(text)
            parts += hash_parts
            q |= reduce(operator.or_, (part.as_q() for part in hash_parts))
        return _Group(parts, q)

    def _reference_part(self, case_id: int | None) -> _Part:
        # An unparseable reference matches nothing (pk__in=[]), rather than being ignored.
        return _Part("reference", q=Q(pk=case_id) if case_id is not None else Q(pk__in=[]))

    def _hash_parts(self, value: str) -> list[_Part]:
        digest = normalise_hash(value)
        parts = [
            _Part(label, items=self.items.filter(**{f"media__{name}": digest}))
            for name, label in _HASH_FIELDS[len(digest)]
            if name != "pdq"
        ]
        if len(digest) == 64:
            media = Media.objects.filter(item__in=self.items)
            near = pdq_near(media, digest, self.filters.distance)
            labels = {
                case_id: "PDQ exact" if d == 0 else f"PDQ near (distance {d})"
                for case_id, d in near.items()
            }
            parts.append(_Part("PDQ", q=Q(pk__in=list(near)), labels=labels))
        return parts

    def _groups(self) -> list[_Group]:
        f = self.filters
        groups: list[_Group] = []
        if self.query:
            groups.append(self._text_group())
        if f.reference:
            reference = parse_reference(f.reference, bare_number=True)
            groups.append(_Group([self._reference_part(reference)]))
        if f.external_id:
            items = self.items.filter(external_id=f.external_id.strip())
            groups.append(_Group([_Part("external id", items=items)]))
        if f.subject:
            subject = f.subject.strip()
            by_id = self.items.filter(subject_account_id=subject)
            by_name = self.items.filter(subject_username__iexact=subject.removeprefix("@"))
            groups.append(
                _Group([_Part("subject id", items=by_id), _Part("username", items=by_name)])
            )
        if f.hash:
            groups.append(_Group(self._hash_parts(f.hash)))
        if f.received_from or f.received_to:
            groups.append(_Group([_Part("received", items=self.items)]))
        return groups

    def cases(self) -> QuerySet[Case]:
        """The matching cases the person may see, newest first."""
        if self.is_empty:
            return Case.objects.none()
        qs = self.visible
        for group in self.groups:
            qs = qs.filter(group.as_q())
        if self.filters.category:
            qs = qs.filter(category__code=self.filters.category)
        if self.filters.status == "active":
            qs = qs.filter(active=True)
        elif self.filters.status:
            qs = qs.filter(status=self.filters.status)
        return qs.select_related("category").order_by("-id")

    def reasons(self, case_ids: Iterable[int]) -> dict[int, list[str]]:
        """Why each case matched: one small query per part for the whole page (item-based
        parts read only the page's items)."""
        ids = list(case_ids)
        found: dict[int, list[str]] = {pk: [] for pk in ids}
        for group in self.groups:
            for part in group.parts:
                if part.label == "received" and len(self.groups) > 1:
                    continue  # only a bound on the other parts
                for pk, label in part.explain(ids).items():
                    if label not in found[pk]:
                        found[pk].append(label)
        if not self.groups:
            # Filters alone (category, status): every result matched them all.
            named = [n for n in ("category", "status") if getattr(self.filters, n)]
            for pk in ids:
                found[pk] += named
        return found

    def page(self, number: int | str | None) -> tuple[Page, list[SearchHit]]:
        """One page of hits (SEARCH_PAGE_SIZE), with items counted, the latest item's arrival
        and why each case matched."""
        page = Paginator(self.cases(), SEARCH_PAGE_SIZE).get_page(number)
        cases = list(page.object_list)
        ids = [c.pk for c in cases]
        stats = {
            row["case_id"]: row
            for row in Item.objects.filter(case_id__in=ids)
            .values("case_id")
            .annotate(n=Count("id"), received=Max("created_at"))
        }
        reasons = self.reasons(ids)
        hits = [
            SearchHit(
                case=c,
                reasons=reasons.get(c.pk, []),
                items=stats.get(c.pk, {}).get("n", 0),
                received_at=stats.get(c.pk, {}).get("received"),
            )
            for c in cases
        ]
        return page, hits


def search_cases(
    user: Any, query: str = "", filters: SearchFilters | None = None
) -> QuerySet[Case]:
    """The cases `user` may see that match `query` and `filters`, newest first."""
    return CaseSearch(user, query, filters).cases()
