"""Referral destinations and packets (police, NCA/CEOP, IWF, optional NCMEC), transparency
reports and QA reviews.

Imports moderation's models only: every other module of the app builds on these.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from moderation.models import Case, Escalation


class Destination(models.Model):
    class Kind(models.TextChoices):
        POLICE = "police", "Local police force"
        NCA_CEOP = "nca_ceop", "NCA / CEOP"
        IWF = "iwf", "Internet Watch Foundation"
        NCMEC = "ncmec", "NCMEC CyberTipline (optional adapter)"

    class Mode(models.TextChoices):
        DRY_RUN = "dry_run", "Dry run (build only, nothing sent)"
        TEST = "test", "Test"
        PRODUCTION = "production", "Production"

    name = models.CharField(max_length=120, unique=True)
    code = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Stable code: a UK police force's code from the force list, 'nca', 'iwf'.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    police_force = models.CharField(
        max_length=100, blank=True, help_text="For police destinations: the UK force."
    )
    jurisdiction = models.CharField(max_length=100, default="United Kingdom")
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=50, blank=True)
    contact_url = models.URLField(blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.DRY_RUN)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="police") | ~Q(police_force=""),
                name="destination_police_has_force",
            ),
            models.UniqueConstraint(
                fields=["code"], condition=~Q(code=""), name="destination_code_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_contact_route(self) -> bool:
        """Where a lead sends the packet (portal, email or phone). Until one is set the
        destination stays in dry run: a packet to it is built but says it was not sent."""
        return bool(self.contact_url or self.contact_email or self.contact_phone)


class ReferralPacket(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        BUILDING = "building", "Building"
        READY = "ready", "Ready to download"
        EXPORTED = "exported", "Exported"
        SUBMITTED = "submitted", "Submitted to the recipient"
        ACKNOWLEDGED = "acknowledged", "Acknowledged by recipient"
        FAILED = "failed", "Failed"

    class Priority(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate (child at risk)"
        URGENT = "urgent", "Urgent"
        ROUTINE = "routine", "Routine"

    class IdentityDocuments(models.TextChoices):
        """Schedule 1 para 5 of the CSEA content reporting regulations: whether the provider
        holds identity documents for the user. Recorded by the drafting lead, never assumed."""

        HELD = "held", "Held by the provider"
        NOT_HELD = "not_held", "Not held by the provider"
        UNKNOWN = "unknown", "Not known"

    cases = models.ManyToManyField(Case, related_name="referral_packets")
    escalation = models.ForeignKey(
        Escalation, null=True, blank=True, on_delete=models.PROTECT, related_name="referral_packets"
    )
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="packets")
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.ROUTINE)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    summary = models.TextField(help_text="Incident summary for the recipient (no imagery).")
    drafted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    drafted_reason = models.CharField(max_length=300, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    build_attempts = models.PositiveSmallIntegerField(default=0)
    build_started_at = models.DateTimeField(null=True, blank=True)
    file = models.FileField(upload_to="packets/%Y/%m", max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    identity_documents = models.CharField(
        max_length=10, choices=IdentityDocuments.choices, blank=True
    )
    identity_documents_detail = models.CharField(max_length=1000, blank=True)
    declaration_confirmed_at = models.DateTimeField(null=True, blank=True)
    # Detection → report: the first item's arrival, when the report is due, when it was sent.
    detected_at = models.DateTimeField(null=True, blank=True)
    report_due_at = models.DateTimeField(null=True, blank=True)
    report_breached_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submission_channel = models.CharField(max_length=40, blank=True)
    ack_due_at = models.DateTimeField(null=True, blank=True)
    ack_breached_at = models.DateTimeField(null=True, blank=True)
    external_reference = models.CharField(max_length=200, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("approve_referralpacket", "Can approve referral packets (four eyes)"),
            ("download_referralpacket", "Can download referral packets"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"RP-{self.pk:06d}" if self.pk else "RP-new"


class TransparencyReport(models.Model):
    """Aggregates for a period (principle 11): no content, no personal data, small counts
    suppressed. Generated by a worker with progress."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    start = models.DateField()
    end = models.DateField(help_text="Exclusive.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    suppression_threshold = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="transparency_period_order"
            )
        ]

    def __str__(self) -> str:
        return f"Transparency report {self.start} to {self.last_day} ({self.status})"

    @property
    def last_day(self) -> date:
        """The period's last day, as people write a period: ``end`` is stored exclusive."""
        return self.end - timedelta(days=1)


class QaReview(models.Model):
    """A blind second review of a sampled decision (Ofcom C4: accuracy)."""

    decision = models.ForeignKey(
        "moderation.Decision", on_delete=models.PROTECT, related_name="qa_reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    sampled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    outcome = models.CharField(max_length=20, blank=True)
    categories = models.ManyToManyField("principles.HarmCategory", blank=True, related_name="+")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["decision", "reviewer"], name="qa_once_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"QA of decision {self.decision_id} by {self.reviewer_id}"
