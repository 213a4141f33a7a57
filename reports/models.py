"""Referral destinations and packets (police, NCA/CEOP, IWF, optional NCMEC)."""

from __future__ import annotations

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

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="police") | ~Q(police_force=""),
                name="destination_police_has_force",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReferralPacket(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        BUILDING = "building", "Building"
        READY = "ready", "Ready to download"
        EXPORTED = "exported", "Exported"
        ACKNOWLEDGED = "acknowledged", "Acknowledged by recipient"
        FAILED = "failed", "Failed"

    class Priority(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate (child at risk)"
        URGENT = "urgent", "Urgent"
        ROUTINE = "routine", "Routine"

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
