"""Items: a platform submits a flagged item (JSON, or multipart with a media file) and reads
its processing status, hashes and matches — never the media."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import is_platform_request
from moderation.models import Flag, Item, Match, Media
from moderation.permissions import CanReadItems, CanSubmitItems
from moderation.selectors import case_visible_to
from moderation.services.intake import ItemInput, item_submit
from principles.models import HarmCategory


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
        fields = (
            "list",
            "provider",
            "algorithm",
            "distance",
            "provider_category",
            "segments",
            "transform",
            "verdict",
            "query_percent",
            "listed_percent",
            "created_at",
        )


class MediaHashesSerializer(serializers.ModelSerializer):
    """Hashes and metadata only: never bytes, never a URL to the file. Videos and animated
    images add their duration, codec, frame rate and counts (the frame hashes themselves are in
    referral packets and `hash_media --json`)."""

    hashed_frames = serializers.SerializerMethodField()

    class Meta:
        model = Media
        fields = (
            "mime",
            "kind",
            "size",
            "width",
            "height",
            "duration",
            "codec",
            "frame_rate",
            "frame_count",
            "hashed_frames",
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

    def get_hashed_frames(self, media: Media) -> int | None:
        return media.frames.count() if media.has_frames else None


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


def item_input(data: dict[str, Any], *, flag_source: str = "api") -> ItemInput:
    """The intake payload from validated serializer data (the media file travels apart)."""
    fields = {k: v for k, v in data.items() if k != "media"}
    return ItemInput(flag_source=flag_source, **fields)


def items_for(request: Request) -> QuerySet[Item]:
    """Items the caller may read: a platform its own submissions; a console user those in
    cases they may see."""
    qs = Item.objects.select_related("media", "category_hint").prefetch_related(
        "flags__category",
        "media__matches__hash_list",
        "media__matches__known_hash",
    )
    if is_platform_request(request):
        return qs.filter(submitted_by=request.user)
    return qs.filter(case__in=case_visible_to(request.user))


class ItemCreateApi(APIView):
    """Submit a flagged item: multipart (metadata + optional `media` file) or JSON."""

    permission_classes = [CanSubmitItems]
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="items_create",
        request={
            "multipart/form-data": ItemInputSerializer,
            "application/json": ItemInputSerializer,
        },
        responses={
            201: ItemCreatedSerializer,
            200: ItemCreatedSerializer,
            400: OpenApiResponse(description="Invalid payload or rejected media"),
            413: OpenApiResponse(description="Upload larger than the limit"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = ItemInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data.get("media")
        item, created = item_submit(
            data=item_input(serializer.validated_data),
            upload=upload,
            actor=request.user,
            submitted_by=request.user,
        )
        body = ItemCreatedSerializer(
            {
                "id": item.pk,
                "status": item.status,
                "case_id": item.case_id,
                "created": created,
                "status_url": f"/api/v1/items/{item.pk}",
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ItemDetailApi(APIView):
    """Processing status, hashes, matches and case id of an item (never the media)."""

    permission_classes = [CanReadItems]

    @extend_schema(operation_id="items_retrieve", responses=ItemDetailSerializer)
    def get(self, request: Request, item_id: int) -> Response:
        item = get_object_or_404(items_for(request), pk=item_id)
        return Response(ItemDetailSerializer(item).data)
