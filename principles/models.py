"""The 12 principles of the Home Office Interim Code of Practice on online CSEA, as data.

Each principle says where its wording comes from (`provenance`): the Interim Code builds on the
Voluntary Principles to Counter Online CSEA (2020), and principles 1-7 match those word for word;
the wording of 8-11 has not been verified against a published text, and 12 is Safeguard's own
summary of the gov.uk guidance's reporting duty. Pages, the API and referral packets show
that provenance rather than a bare "checked" flag (issue #17).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models


class Priority(models.IntegerChoices):
    """Queue priority; lower is more urgent (DESIGN.md §6)."""

    P0 = 0, "P0 immediate risk"
    P1 = 1, "P1 ongoing contact"
    P2 = 2, "P2 suspected new abuse material"
    P3 = 3, "P3 known abuse material"
    P4 = 4, "P4 other"


DEFAULT_SLA = {
    Priority.P0: timedelta(minutes=15),
    Priority.P1: timedelta(hours=1),
    Priority.P2: timedelta(hours=4),
    Priority.P3: timedelta(hours=24),
    Priority.P4: timedelta(hours=72),
}


class Provenance(models.TextChoices):
    """Where a principle's wording comes from, and against what (if anything) it was checked."""

    VOLUNTARY_PRINCIPLES = (
        "voluntary_principles",
        "Wording checked against the Voluntary Principles to Counter Online CSEA (2020)",
    )
    UNVERIFIED = "unverified", "Wording not yet verified against a published text"
    SAFEGUARD_SUMMARY = (
        "safeguard_summary",
        "Safeguard's summary of the guidance's reporting duty (not published text)",
    )
    VERIFIED = "verified", "Wording verified against the published Interim Code"


# `checked` is true exactly for these: the wording was compared with a published text. The
# registry reader (`principles.registry`) and the admin form enforce it. It is not a database
# constraint because `principle_update` still lets an administrator set `checked` on its own
# (the label shown comes from `provenance`, so that never overstates a principle's source).
CHECKED_PROVENANCES = frozenset({Provenance.VOLUNTARY_PRINCIPLES, Provenance.VERIFIED})

# Short labels for tables and referral packets (the choices' labels are the long form).
PROVENANCE_SHORT_LABELS: dict[str, str] = {
    Provenance.VOLUNTARY_PRINCIPLES: "checked against the Voluntary Principles (2020)",
    Provenance.UNVERIFIED: "wording unverified",
    Provenance.SAFEGUARD_SUMMARY: "Safeguard's summary of the reporting duty",
    Provenance.VERIFIED: "verified against the published Interim Code",
}


class Principle(models.Model):
    number = models.PositiveSmallIntegerField(unique=True)
    theme = models.CharField(max_length=120)
    title = models.CharField(max_length=200)
    text = models.TextField()
    source_url = models.URLField()
    source_title = models.CharField(
        max_length=200, blank=True, help_text="The name of the document at the source URL."
    )
    provenance = models.CharField(
        max_length=32,
        choices=Provenance.choices,
        default=Provenance.UNVERIFIED,
        help_text="Where this wording comes from; see the principles page for the categories.",
    )
    checked = models.BooleanField(
        default=False,
        help_text="Whether this wording was checked against a published text (the Voluntary "
        "Principles, or the Interim Code itself); the provenance says which.",
    )
    data_version = models.CharField(max_length=20)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(number__gte=1, number__lte=12), name="principle_number_1_to_12"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number}. {self.title}"

    @property
    def provenance_label(self) -> str:
        """The short, honest label shown beside the principle (tables, packets)."""
        return PROVENANCE_SHORT_LABELS.get(self.provenance, self.provenance)

    @property
    def wording_checked(self) -> bool:
        """Whether the provenance says the wording was compared with a published text."""
        return self.provenance in CHECKED_PROVENANCES


class HarmCategory(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    principles = models.ManyToManyField(Principle, related_name="harm_categories")
    default_priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    sla = models.DurationField(help_text="Time allowed to action a case of this category.")
    is_illegal_content = models.BooleanField(default=True)

    class Meta:
        ordering = ["default_priority", "code"]
        verbose_name_plural = "harm categories"

    def __str__(self) -> str:
        return self.label

    def principle_numbers(self) -> list[int]:
        return sorted(p.number for p in self.principles.all())
