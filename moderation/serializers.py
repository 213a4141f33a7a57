from __future__ import annotations

from typing import Any

from rest_framework import serializers

from principles.models import HarmCategory

from .models import Case, Decision, Flag, HashImport, HashList, Item, Match, Media


class _CategoryField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=HarmCategory.objects.all(), **kwargs)


class ItemInputSerializer(serializers.Serializer):
    source = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,100}$", max_length=100)
    external_id = serializers.CharField(max_length=255)
    kind = serializers.ChoiceField(choices=Item.Kind.choices)
    category_hint = _CategoryField(required=False, allow_null=True)
    subject_account_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    subject_username = serializers.CharField(max_length=255, required=False, allow_blank=True)
    subject_ip = serializers.IPAddressField(required=False, allow_null=True)
    subject_port = serializers.IntegerField(
        min_value=0, max_value=65535, required=False, allow_null=True
    )
    subject_country = serializers.RegexField(r"^[A-Z]{2}$", required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Item.Visibility.choices, required=False)
    uk_linked = serializers.BooleanField(required=False, allow_null=True, default=None)
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    reporter = serializers.CharField(max_length=255, required=False, allow_blank=True)
    note = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    text = serializers.CharField(max_length=100000, required=False, allow_blank=True)
    url = serializers.URLField(max_length=2000, required=False, allow_blank=True)
    media = serializers.FileField(required=False, allow_empty_file=True, use_url=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs["kind"]
        has_media = attrs.get("media") is not None
        if kind in (Item.Kind.IMAGE, Item.Kind.VIDEO) and not has_media:
            raise serializers.ValidationError({"media": f"A {kind} item needs a media file."})
        if has_media and kind not in (Item.Kind.IMAGE, Item.Kind.VIDEO, Item.Kind.LIVESTREAM):
            raise serializers.ValidationError(
                {"media": f"A {kind} item takes no media file; send text or url instead."}
            )
        if kind == Item.Kind.URL and not attrs.get("url"):
            raise serializers.ValidationError({"url": "A url item needs a url."})
        if kind in (Item.Kind.TEXT, Item.Kind.MESSAGE) and not attrs.get("text"):
            raise serializers.ValidationError({"text": f"A {kind} item needs text."})
        return attrs


class ItemCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    status_url = serializers.CharField()
    case_id = serializers.IntegerField(allow_null=True)
    created = serializers.BooleanField()


class MatchSerializer(serializers.ModelSerializer):
    list = serializers.CharField(source="hash_list.name")
    provider = serializers.CharField(source="hash_list.provider")
    provider_category = serializers.CharField(source="known_hash.category")

    class Meta:
        model = Match
        fields = ("list", "provider", "algorithm", "distance", "provider_category", "created_at")


class MediaHashesSerializer(serializers.ModelSerializer):
    """Hashes and metadata only: never bytes, never a URL to the file."""

    class Meta:
        model = Media
        fields = (
            "mime",
            "kind",
            "size",
            "width",
            "height",
            "sha256",
            "md5",
            "sha1",
            "pdq",
            "pdq_quality",
            "phash",
            "dhash",
            "hash_status",
            "hash_error",
            "hashed_at",
        )


class FlagSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Flag
        fields = ("source", "category", "note", "reporter", "created_at")


class ItemDetailSerializer(serializers.ModelSerializer):
    media = serializers.SerializerMethodField()
    matches = serializers.SerializerMethodField()
    flags = FlagSerializer(many=True, read_only=True)
    case_id = serializers.IntegerField(allow_null=True)
    category_hint = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Item
        fields = (
            "id",
            "source",
            "external_id",
            "kind",
            "status",
            "category_hint",
            "case_id",
            "visibility",
            "uk_linked",
            "occurred_at",
            "created_at",
            "media",
            "matches",
            "flags",
        )

    # Hashes and matches only, never bytes or a file URL. Callers prefetch media__matches.
    def get_media(self, item: Item) -> dict[str, Any] | None:
        media = getattr(item, "media", None)
        return MediaHashesSerializer(media).data if media else None

    def get_matches(self, item: Item) -> list[dict[str, Any]]:
        media = getattr(item, "media", None)
        return MatchSerializer(media.matches.all(), many=True).data if media else []


class ReportInputSerializer(serializers.Serializer):
    source = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,100}$", max_length=100)
    external_id = serializers.CharField(max_length=255)
    report_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    reporter = serializers.CharField(max_length=255, required=False, allow_blank=True)
    category = _CategoryField(required=False, allow_null=True)
    note = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    item = ItemInputSerializer(required=False, help_text="The item, if it is new to Safeguard.")


class ReportCreatedSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    flag_id = serializers.IntegerField()
    created = serializers.BooleanField()


class CaseSummarySerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    reference = serializers.CharField()

    class Meta:
        model = Case
        fields = (
            "id",
            "reference",
            "status",
            "priority",
            "category",
            "immediate_risk",
            "restricted",
            "sla_due_at",
            "lease_expires_at",
            "created_at",
        )


class HashListSerializer(serializers.ModelSerializer):
    size = serializers.IntegerField(read_only=True, source="hashes.count")

    class Meta:
        model = HashList
        fields = (
            "id",
            "name",
            "provider",
            "algorithm",
            "threshold",
            "enabled",
            "verified",
            "version",
            "size",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "version", "size", "created_at", "updated_at")


class HashListInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    provider = serializers.ChoiceField(choices=HashList.Provider.choices, required=False)
    algorithm = serializers.ChoiceField(choices=HashList.Algorithm.choices)
    threshold = serializers.IntegerField(min_value=0, max_value=31, required=False)
    enabled = serializers.BooleanField(required=False)
    verified = serializers.BooleanField(required=False)


class HashImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV rows: hash,category,metadata (JSON object)")


class HashImportSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(source="progress_percent")
    list = serializers.CharField(source="hash_list.name")

    class Meta:
        model = HashImport
        fields = (
            "id",
            "list",
            "status",
            "percent",
            "total_rows",
            "processed_rows",
            "added",
            "updated",
            "invalid_count",
            "invalid",
            "error",
            "created_at",
            "finished_at",
        )


class ItemSummarySerializer(ItemDetailSerializer):
    """An item inside a case: the detail fields plus its text, URL and subject account."""

    class Meta:
        model = Item
        fields = (
            "id",
            "source",
            "external_id",
            "kind",
            "status",
            "subject_account_id",
            "subject_username",
            "visibility",
            "uk_linked",
            "occurred_at",
            "created_at",
            "text",
            "url",
            "media",
            "matches",
            "flags",
        )


class CaseDetailSerializer(CaseSummarySerializer):
    items = ItemSummarySerializer(many=True, read_only=True)
    claimed_by = serializers.CharField(source="claimed_by.username", allow_null=True, default=None)
    priority_reasons = serializers.JSONField()

    class Meta(CaseSummarySerializer.Meta):
        fields = (
            *CaseSummarySerializer.Meta.fields,
            "claimed_by",
            "claimed_at",
            "priority_reasons",
            "items",
        )


class DecisionInputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=Decision.Outcome.choices)
    categories = serializers.SlugRelatedField(
        slug_field="code", many=True, required=False, queryset=HarmCategory.objects.all()
    )
    rationale = serializers.CharField(max_length=20000, required=False, allow_blank=True)


class DecisionSerializer(serializers.ModelSerializer):
    categories = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = Decision
        fields = (
            "id",
            "case",
            "outcome",
            "categories",
            "principles",
            "rationale",
            "bulk",
            "created_at",
        )
