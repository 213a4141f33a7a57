"""Moderation domain: items, evidence, flags, hash lists, matches, cases, decisions, reveals."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from principles.models import HarmCategory, Priority


def evidence_path(instance: Media, filename: str) -> str:
    # The original file name is kept in a field, never in the path: names can carry content
    # descriptions, and paths end up in logs.
    now = timezone.now()
    return f"{now:%Y/%m}/{uuid.uuid4().hex}"


class Case(models.Model):
    """The unit of review: the items of one subject account, worked by one moderator at a time."""

    class Status(models.TextChoices):
        OPEN = "open", "Open (in the queue)"
        IN_REVIEW = "in_review", "In review (claimed)"
        DECIDED = "decided", "Decided"
        CLOSED = "closed", "Closed"

    subject_key = models.CharField(max_length=400, db_index=True)
    source = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.P4)
    category = models.ForeignKey(
        HarmCategory, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    immediate_risk = models.BooleanField(default=False)
    restricted = models.BooleanField(default=False)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="claimed_cases",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField()
    priority_reasons = models.JSONField(
        default=list, blank=True, help_text="Why the case has its priority, newest last."
    )
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["priority", "sla_due_at", "id"]
        permissions = [
            ("claim_case", "Can claim cases from the queue"),
            ("decide_case", "Can record decisions on cases"),
            ("mark_immediate_risk", "Can mark a child at immediate risk"),
            ("view_all_cases", "Can see every case, restricted ones included"),
            ("reassign_case", "Can reassign or release another person's case"),
            ("review_decision", "Can second-review decisions"),
            ("work_restricted_case", "Can work this restricted case (object permission)"),
        ]
        indexes = [
            # The queue's hot path: open cases in queue order. Partial, so claimed and decided
            # rows leave the index and claimers don't wade through them (PERFORMANCE.md).
            models.Index(
                fields=["priority", "sla_due_at", "id"],
                name="case_queue_open_idx",
                condition=Q(status="open"),
            ),
            # The console's queue page lists open and in-review cases in queue order.
            models.Index(
                fields=["priority", "sla_due_at", "id"],
                name="case_queue_active_idx",
                condition=Q(status__in=["open", "in_review"]),
            ),
            models.Index(
                fields=["lease_expires_at"], name="case_lease_idx", condition=Q(status="in_review")
            ),
        ]
        constraints = [
            # Immediate risk always sorts first: it implies P0, so queue order stays one index.
            models.CheckConstraint(
                condition=Q(immediate_risk=False) | Q(priority=Priority.P0),
                name="case_immediate_risk_is_p0",
            ),
            models.CheckConstraint(
                condition=~Q(status="in_review")
                | Q(claimed_by__isnull=False, lease_expires_at__isnull=False),
                name="case_in_review_has_lease",
            ),
            # One open case per subject: new items join it instead of opening another.
            models.UniqueConstraint(
                fields=["subject_key"],
                name="case_one_open_per_subject",
                condition=Q(status__in=["open", "in_review"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk} ({self.get_priority_display()})"

    @property
    def reference(self) -> str:
        return f"SG-{self.pk:06d}"

    def is_held_by(self, user: object, *, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return (
            self.status == self.Status.IN_REVIEW
            and self.claimed_by_id == getattr(user, "pk", None)
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


class Item(models.Model):
    """One flagged thing on the platform; unique per (source, external_id), so resubmission is
    idempotent."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        TEXT = "text", "Text"
        URL = "url", "URL"
        LIVESTREAM = "livestream", "Livestream"
        ACCOUNT = "account", "Account"
        MESSAGE = "message", "Message thread"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"
        UNKNOWN = "unknown", "Unknown"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready for review"
        FAILED = "failed", "Processing failed (reviewable)"

    source = models.CharField(max_length=100)
    external_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    category_hint = models.ForeignKey(
        HarmCategory, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="items"
    )
    subject_account_id = models.CharField(max_length=255, blank=True)
    subject_username = models.CharField(max_length=255, blank=True)
    subject_ip = models.GenericIPAddressField(null=True, blank=True)
    subject_port = models.PositiveIntegerField(null=True, blank=True)
    subject_country = models.CharField(max_length=2, blank=True)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.UNKNOWN
    )
    uk_linked = models.BooleanField(null=True)
    subject_account_created_at = models.DateTimeField(null=True, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    text = models.TextField(blank=True)
    url = models.URLField(max_length=2000, blank=True)
    note = models.TextField(blank=True)
    reporter = models.CharField(max_length=255, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="item_source_external_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.source}:{self.external_id}"

    @property
    def subject_key(self) -> str:
        if self.subject_account_id:
            return f"{self.source}:account:{self.subject_account_id}"
        return f"{self.source}:item:{self.external_id}"


class Media(models.Model):
    """A stored evidence file. Private storage only; read through the audited media view."""

    class HashStatus(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    item = models.OneToOneField(Item, on_delete=models.PROTECT, related_name="media")
    file = models.FileField(upload_to=evidence_path, max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    declared_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField()
    mime = models.CharField(max_length=100)
    kind = models.CharField(max_length=16)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Chain of custody: SHA-256 of the bytes as received, taken while the upload streamed.
    sha256 = models.CharField(max_length=64, db_index=True)
    md5 = models.CharField(max_length=32, blank=True, db_index=True)
    sha1 = models.CharField(max_length=40, blank=True, db_index=True)
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    phash = models.CharField(max_length=16, blank=True)
    dhash = models.CharField(max_length=16, blank=True)
    exif = models.JSONField(default=dict, blank=True)
    hash_status = models.CharField(
        max_length=16, choices=HashStatus.choices, default=HashStatus.PENDING
    )
    hash_error = models.TextField(blank=True)
    hash_attempts = models.PositiveSmallIntegerField(default=0)
    hash_started_at = models.DateTimeField(null=True, blank=True)
    hashed_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(
        null=True, blank=True, help_text="Bytes deleted by the retention purge (hashes kept)."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "media"
        permissions = [("reveal_media", "Can reveal media (with a reason)")]
        indexes = [
            models.Index(
                fields=["hash_status", "hash_started_at"],
                name="media_hash_status_idx",
                condition=Q(hash_status__in=["pending", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Media {self.pk} ({self.mime}, {self.sha256[:12]}…)"


class Flag(models.Model):
    """Why an item is here. An item can have many."""

    class Source(models.TextChoices):
        USER_REPORT = "user_report", "User report"
        HASH_MATCH = "hash_match", "Hash match"
        CLASSIFIER = "classifier", "Classifier"
        STAFF = "staff", "Staff"
        API = "api", "Platform API"

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="flags")
    source = models.CharField(max_length=16, choices=Source.choices)
    category = models.ForeignKey(
        HarmCategory, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)
    reporter = models.CharField(max_length=255, blank=True)
    report_id = models.CharField(
        max_length=255, blank=True, help_text="The platform's id of a user report (deduplicates)."
    )
    classifier_score = models.FloatField(null=True, blank=True)
    match = models.ForeignKey(
        "Match", null=True, blank=True, on_delete=models.PROTECT, related_name="flags"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "source", "report_id"],
                name="flag_report_once",
                condition=~Q(report_id=""),
            ),
            models.UniqueConstraint(
                fields=["match"], name="flag_match_once", condition=Q(match__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} on item {self.item_id}"


class HashList(models.Model):
    """A "bank" of known hashes from one provider, matched with one algorithm and threshold."""

    class Provider(models.TextChoices):
        IWF = "iwf", "IWF"
        NCMEC = "ncmec", "NCMEC"
        INTERNAL = "internal", "Internal"
        OTHER = "other", "Other"

    class Algorithm(models.TextChoices):
        SHA256 = "sha256", "SHA-256 (exact)"
        MD5 = "md5", "MD5 (exact)"
        SHA1 = "sha1", "SHA-1 (exact)"
        PDQ = "pdq", "PDQ (256-bit perceptual)"
        PHASH = "phash", "pHash (64-bit perceptual)"
        DHASH = "dhash", "dHash (64-bit perceptual)"

    EXACT = frozenset({"sha256", "md5", "sha1"})
    BITS = {"pdq": 256, "phash": 64, "dhash": 64}
    HEX_LENGTH = {"sha256": 64, "md5": 32, "sha1": 40, "pdq": 64, "phash": 16, "dhash": 16}
    MAX_THRESHOLD = {"pdq": 31, "phash": 10, "dhash": 10}

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.INTERNAL)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices)
    threshold = models.PositiveSmallIntegerField(
        default=0, help_text="Largest Hamming distance that counts as a match (0 for exact)."
    )
    enabled = models.BooleanField(default=True)
    verified = models.BooleanField(
        default=False,
        help_text="Entries are verified by the provider: matches can be actioned from metadata "
        "alone, without viewing.",
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(algorithm__in=["sha256", "md5", "sha1"], threshold=0)
                | Q(algorithm="pdq", threshold__lte=31)
                | Q(algorithm__in=["phash", "dhash"], threshold__lte=10),
                name="hashlist_threshold_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_algorithm_display()}, v{self.version})"

    @property
    def is_exact(self) -> bool:
        return self.algorithm in self.EXACT


class KnownHash(models.Model):
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="hashes")
    value = models.CharField(max_length=64)
    category = models.CharField(
        max_length=32, blank=True, help_text="The provider's category, e.g. IWF A/B/C."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "known hashes"
        constraints = [
            models.UniqueConstraint(fields=["hash_list", "value"], name="knownhash_once_per_list"),
        ]
        indexes = [models.Index(fields=["value"], name="knownhash_value_idx")]

    def __str__(self) -> str:
        return f"{self.value[:16]}… in {self.hash_list_id}"


class HashImport(models.Model):
    """One CSV import into a hash list, run by a worker with progress shown in the console."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="imports")
    file = models.FileField(upload_to="hash-imports/%Y/%m", max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    invalid = models.JSONField(default=list, blank=True, help_text="[{line, error}] (first 1000)")
    invalid_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} into {self.hash_list_id} ({self.status})"

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


class Match(models.Model):
    media = models.ForeignKey(Media, on_delete=models.CASCADE, related_name="matches")
    known_hash = models.ForeignKey(KnownHash, on_delete=models.CASCADE, related_name="matches")
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="matches")
    algorithm = models.CharField(max_length=16)
    distance = models.PositiveSmallIntegerField()
    list_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "matches"
        ordering = ["distance", "id"]
        constraints = [
            models.UniqueConstraint(fields=["media", "known_hash"], name="match_once"),
        ]

    def __str__(self) -> str:
        return f"Media {self.media_id} ~ {self.hash_list_id} (d={self.distance})"


class Decision(models.Model):
    class Outcome(models.TextChoices):
        NO_VIOLATION = "no_violation", "No violation"
        REMOVE = "remove", "Remove"
        REMOVE_AND_REPORT = "remove_and_report", "Remove and report"
        ESCALATE = "escalate", "Escalate to a safety lead"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    categories = models.ManyToManyField(HarmCategory, blank=True, related_name="+")
    principles = models.JSONField(default=list, blank=True)
    rationale = models.TextField(blank=True)
    bulk = models.BooleanField(default=False, help_text="Actioned in bulk from metadata alone.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} on case {self.case_id}"


class Reveal(models.Model):
    """Who revealed which media, when and why: exposure counters and truthful 'viewed' fields."""

    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="reveals")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reveals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Reveal of media {self.media_id} by {self.user_id}"


class ExposureLift(models.Model):
    """A lead lifts a moderator's hard reveal limit for one day (with a reason)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    extra_reveals = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"+{self.extra_reveals} reveals for {self.user_id} on {self.day}"


class WebhookDelivery(models.Model):
    """One signed decision notification to the platform, with its attempts (delivery log)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="deliveries")
    url = models.URLField(max_length=2000)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_due_idx", condition=Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} of decision {self.decision_id} ({self.status})"


class EscalationRule(models.Model):
    """An admin's policy as data: when all conditions hold for a case, apply the actions.

    Conditions and actions are validated on save by `moderation.rules.rule_validate`.
    """

    name = models.CharField(max_length=120, unique=True)
    order = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    conditions = models.JSONField(default=list)
    actions = models.JSONField(default=list)
    description = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"


class Escalation(models.Model):
    class Tier(models.TextChoices):
        LEAD = "lead", "Safety lead review"
        IMMEDIATE_RISK = "immediate_risk", "Child at immediate risk (999)"

    class Status(models.TextChoices):
        OPEN = "open", "Open (paging)"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="escalations")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reason = models.TextField()
    rule = models.ForeignKey(
        EscalationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="escalations"
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    sla_due_at = models.DateTimeField()
    level = models.PositiveSmallIntegerField(default=1, help_text="Paging tier reached.")
    page_count = models.PositiveIntegerField(default=0)
    last_paged_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    # The 999 call record (never dialled by the console; recorded by the lead who called).
    called_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    called_at = models.DateTimeField(null=True, blank=True)
    police_force = models.CharField(max_length=100, blank=True)
    incident_reference = models.CharField(max_length=100, blank=True)
    call_notes = models.TextField(blank=True)
    referred_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        permissions = [("work_escalations", "Can acknowledge escalations and record 999 calls")]
        indexes = [
            models.Index(
                fields=["status", "sla_due_at"],
                name="escalation_open_idx",
                condition=Q(status__in=["open", "acknowledged"]),
            )
        ]
        constraints = [
            # One live escalation per case and tier: repeated triggers join it.
            models.UniqueConstraint(
                fields=["case", "tier"],
                name="escalation_one_live_per_tier",
                condition=Q(status__in=["open", "acknowledged"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_tier_display()} on case {self.case_id} ({self.status})"


class OnCallShift(models.Model):
    """A weekly rota entry: who is on call, on which weekday, between which UTC times."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oncall_shifts"
    )
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday … 6 = Sunday")
    starts = models.TimeField()
    ends = models.TimeField(help_text="Exclusive; a shift may not cross midnight.")
    tier = models.PositiveSmallIntegerField(default=1, help_text="1 primary, 2 secondary…")

    class Meta:
        ordering = ["weekday", "starts", "tier"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=0, weekday__lte=6), name="oncall_weekday_range"
            ),
            models.CheckConstraint(
                condition=Q(ends__gt=models.F("starts")), name="oncall_shift_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} weekday {self.weekday} {self.starts}-{self.ends} (tier {self.tier})"


class OnCallOverride(models.Model):
    """A one-off replacement of the rota for a period (holidays, swaps)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oncall_overrides"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    tier = models.PositiveSmallIntegerField(default=1)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="oncall_override_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} on call {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M}"


class Notification(models.Model):
    """An outbound page or message: identifiers and links only, never media."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    escalation = models.ForeignKey(
        Escalation, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.CharField(max_length=500)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=16, default="sent")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient} ({self.status})"


class LegalHold(models.Model):
    """Preservation: while a hold is active, the case's evidence may not be deleted."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="legal_holds")
    reason = models.CharField(max_length=300)
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"Hold on case {self.case_id} until {self.expires_at:%Y-%m-%d}"


class PurgeReceipt(models.Model):
    """What the retention purge deleted, and why: the bytes go, the receipt stays."""

    media_id_ref = models.BigIntegerField()
    case_id_ref = models.BigIntegerField(null=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=300)
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"Purged media {self.media_id_ref} ({self.sha256[:12]}…)"
