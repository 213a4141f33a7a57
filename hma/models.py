"""HMA banks: a name and a matching ratio over Safeguard hash lists, one list per algorithm.

HMA (facebook/ThreatExchange, hasher-matcher-actioner/src/OpenMediaMatch/storage/interface.py)
keeps *banks* of *content*, each content with one signal per signal type. Safeguard keeps
*hash lists* of one algorithm each (moderation.models.HashList) and their entries (KnownHash).
A bank here is the set of lists that hold its signals, one per algorithm, created when the
first signal of that algorithm arrives; a bank's content is one list entry, whose KnownHash id
is HMA's `bank_content_id`. Lists created outside this API (an IWF import) belong to no bank:
the API shows each as a bank of its own, read-only (hma.selectors).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from moderation.models import HashList

# HMA's rule for bank names (storage/postgres/database.py): UPPER_WITH_UNDERSCORE.
BANK_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
# Room for the list names derived from it ("<bank> (<algorithm>) #<id>", max 100).
BANK_NAME_MAX_LENGTH = 72


class Bank(models.Model):
    """An HMA bank. Deleting one keeps the row (deleted_at) and disables its lists: their
    entries and the matches they made stay in case history, and a new bank may take the name."""

    name = models.CharField(max_length=BANK_NAME_MAX_LENGTH)
    matching_enabled_ratio = models.FloatField(
        default=1.0,
        help_text="HMA's share of lookups (0-1, by a seeded coin flip) that report this bank; "
        "0 disables its lists.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Names are unique among live banks only: HMA lets a deleted bank's name be reused.
            models.UniqueConstraint(
                fields=["name"], condition=Q(deleted_at__isnull=True), name="hma_bank_live_name"
            ),
            models.CheckConstraint(
                condition=Q(matching_enabled_ratio__gte=0, matching_enabled_ratio__lte=1),
                name="hma_bank_ratio_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name if self.deleted_at is None else f"{self.name} (deleted)"


class BankList(models.Model):
    """The hash list that holds one algorithm's signals of a bank."""

    bank = models.ForeignKey(Bank, on_delete=models.CASCADE, related_name="links")
    hash_list = models.OneToOneField(HashList, on_delete=models.CASCADE, related_name="hma_link")
    # The list's algorithm (which never changes), here so the database keeps one per bank.
    algorithm = models.CharField(max_length=16, choices=HashList.Algorithm.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bank", "algorithm"], name="hma_banklist_one_per_algorithm"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bank_id}: list {self.hash_list_id} ({self.algorithm})"
