"""The 12 principles of the Home Office Interim Code of Practice on online CSEA, as data."""

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


class Principle(models.Model):
    number = models.PositiveSmallIntegerField(unique=True)
    theme = models.CharField(max_length=120)
    title = models.CharField(max_length=200)
    text = models.TextField()
    source_url = models.URLField()
    checked = models.BooleanField(
        default=False,
        help_text="Whether this wording was checked against the published code.",
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
