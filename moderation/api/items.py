"""Items: a platform submits a flagged item (JSON, or multipart with a media file) and reads
its processing status, hashes and matches — never the media."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils import html
from rest_framework.views import APIView

from core.errors import DomainError
from core.parsers import BoundedJSONParser, loads_bounded
from core.permissions import is_platform_request
from moderation.models import Flag, Item, Match, Media
from moderation.permissions import CanReadItems, CanSubmitItems
from moderation.selectors import case_visible_to
from moderation.services.intake import (
    BatchEntry,
    BatchResult,
    ItemInput,
    item_submit,
    items_submit_batch,
)
from principles.models import HarmCategory


class _CategoryField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=HarmCategory.objects.all(), **kwargs)


# Platforms' clocks drift: a time a few minutes ahead of ours is skew, not a bad payload.
_CLOCK_SKEW = timedelta(minutes=5)


class ItemSubjectInputSerializer(serializers.Serializer):
    """The reported user, as the platform knows them. Every field is optional.

    In a multipart request (with a media file) send it as a JSON object in the `subject`
    form field.
    """

    default_error_messages = {"invalid": "Must be a JSON object."}

    account_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    username = serializers.CharField(max_length=255, required=False, allow_blank=True)
    display_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.RegexField(
        r"^\+?[0-9 ()-]{5,30}$",
        max_length=50,
        required=False,
        allow_blank=True,
        help_text="E.164 preferred (`+447700900123`); digits, spaces, `()-` and a leading `+`.",
    )
    ip_address = serializers.IPAddressField(
        required=False, allow_null=True, help_text="IPv4 or IPv6."
    )
    port = serializers.IntegerField(min_value=0, max_value=65535, required=False, allow_null=True)
    ip_seen_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="ISO 8601: when the platform saw the user at `ip_address`:`port`.",
    )
    country = serializers.RegexField(
        r"^[A-Z]{2}$",
        required=False,
        allow_blank=True,
        help_text="ISO 3166-1 alpha-2, upper case (`GB`).",
    )
    account_created_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601."
    )
    linked_accounts = serializers.ListField(
        child=serializers.CharField(max_length=255),
        max_length=50,
        required=False,
        help_text="Other accounts of the same user (identifiers, at most 50).",
    )

    def get_value(self, dictionary: Any) -> Any:
        # A multipart form has no nested objects: there `subject` comes as a JSON string.
        # Anything that does not parse is passed on as-is and refused as "not a JSON object".
        if html.is_html_input(dictionary):
            raw = dictionary.get(self.field_name, empty)
            if raw == "":
                return empty
            if isinstance(raw, str):
                try:
                    return json.loads(raw)
                except (ValueError, RecursionError):
                    return raw
            return raw
        return super().get_value(dictionary)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # A plain message on `subject` itself rather than DRF's `non_field_errors` inside it.
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_internal_value(data)

    def validate_ip_seen_at(self, value: datetime | None) -> datetime | None:
        if value is not None and value > timezone.now() + _CLOCK_SKEW:
            raise serializers.ValidationError("Is more than 5 minutes in the future.")
        return value

    def validate_account_created_at(self, value: datetime | None) -> datetime | None:
        if value is not None and value > timezone.now() + _CLOCK_SKEW:
            raise serializers.ValidationError("Is more than 5 minutes in the future.")
        return value


# The flat fields of the first API version and their place in `subject`: both are accepted;
# given both, they must agree.
_FLAT_SUBJECT_FIELDS = {
    "subject_account_id": "account_id",
    "subject_username": "username",
    "subject_ip": "ip_address",
    "subject_port": "port",
    "subject_country": "country",
}
_SUBJECT_ONLY_FIELDS = {
    "display_name": "subject_display_name",
    "email": "subject_email",
    "phone": "subject_phone",
    "ip_seen_at": "subject_ip_seen_at",
    "account_created_at": "subject_account_created_at",
    "linked_accounts": "subject_linked_accounts",
}


def _merge_subject(attrs: dict[str, Any]) -> None:
    """Fold the nested `subject` into the flat `subject_*` fields ItemInput takes (in place).

    A value is "given" when it is neither blank nor null; a flat field and its nested twin that
    are both given must be equal.
    """
    subject = attrs.pop("subject", None) or {}
    conflicts: dict[str, list[str]] = {}
    for flat, nested in _FLAT_SUBJECT_FIELDS.items():
        value = subject.get(nested)
        if value in (None, ""):
            continue
        if attrs.get(flat) not in (None, "") and attrs[flat] != value:
            conflicts[nested] = [f"Differs from `{flat}`: send one of them, or the same value."]
        attrs[flat] = value
    if conflicts:
        raise serializers.ValidationError({"subject": conflicts})
    for nested, flat in _SUBJECT_ONLY_FIELDS.items():
        if subject.get(nested) not in (None, ""):
            attrs[flat] = subject[nested]


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
    subject = ItemSubjectInputSerializer(
        required=False,
        allow_null=True,
        help_text=(
            "The reported user. Supersedes the flat `subject_*` fields, which still work; "
            "a field given both ways must have the same value. Multipart: a JSON string."
        ),
    )
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
        _merge_subject(attrs)
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


def platform_account_for(request: Request) -> Any:
    """The intake namespace of a request: the platform's service account for a platform token
    (idempotency and lookups by source + external_id stay inside it), None for in-house
    submitters (console users and console tokens share one namespace)."""
    return request.user if is_platform_request(request) else None


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


# One ItemInputSerializer per thread, reused by every single-item request on it (gunicorn's
# gthread workers serve requests on several threads, hence per thread). Building one
# deep-copies its ~20 declared fields, ~8 % of the request's CPU (benchmarks/LOAD.md); it
# binds its fields once, and validation keeps nothing on it (the batch endpoint already
# validates all its items with one).
_serializers = threading.local()


def _item_input_serializer() -> ItemInputSerializer:
    serializer = getattr(_serializers, "item_input", None)
    if serializer is None:
        serializer = _serializers.item_input = ItemInputSerializer()
    return serializer


class ItemCreateApi(APIView):
    """Submit a flagged item: multipart (metadata + optional `media` file) or JSON."""

    permission_classes = [CanSubmitItems]
    parser_classes = [MultiPartParser, BoundedJSONParser]

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
        # One item, one file: a second part (or a file under another name) would otherwise be
        # dropped silently — the client would believe both were stored.
        files = getattr(request, "FILES", None)
        if files is not None and (len(files.getlist("media")) > 1 or set(files) - {"media"}):
            raise serializers.ValidationError(
                {"media": "Send exactly one file, in the 'media' field; one item per request."}
            )
        # run_validation raises the body is_valid would (a dict of field errors).
        valid = _item_input_serializer().run_validation(request.data)
        item, created = item_submit(
            data=item_input(valid),
            upload=valid.get("media"),
            actor=request.user,
            submitted_by=request.user,
            platform_account=platform_account_for(request),
        )
        return Response(
            _created_body(item, created),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ItemDetailApi(APIView):
    """Processing status, hashes, matches and case id of an item (never the media)."""

    permission_classes = [CanReadItems]

    @extend_schema(operation_id="items_retrieve", responses=ItemDetailSerializer)
    def get(self, request: Request, item_id: int) -> Response:
        item = get_object_or_404(items_for(request), pk=item_id)
        return Response(ItemDetailSerializer(item).data)


# The most items one batch request may carry (issue 19); more is a 413 naming it.
BATCH_MAX_ITEMS = 500


class BatchTooLarge(DomainError):
    status = 413
    code = "too_many_items"
    field = None


class ItemBatchInputSerializer(serializers.Serializer):
    """JSON: `{"items": [<item>, …]}`, each item as `POST /api/v1/items` takes it, without
    `media`. Multipart: `items` is that list as a JSON string, and an image or video item names
    its file part in `media` (`"media": "file3"`); every file part must be named by one item."""

    items = ItemInputSerializer(many=True, help_text=f"At most {BATCH_MAX_ITEMS} items.")


class ItemBatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request.")
    status = serializers.IntegerField(help_text="201 stored, 200 already stored, 4xx refused.")
    item = ItemCreatedSerializer(required=False, help_text="When stored (201 or 200).")
    error = serializers.DictField(
        required=False, help_text="When refused: the API's error object (code, message, fields)."
    )


class ItemBatchOutputSerializer(serializers.Serializer):
    results = ItemBatchResultSerializer(many=True)
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    failed = serializers.IntegerField()


def _created_body(item: Item, created: bool) -> dict[str, Any]:
    return {
        "id": item.pk,
        "status": item.status,
        "case_id": item.case_id,
        "created": created,
        "status_url": f"/api/v1/items/{item.pk}",
    }


def _malformed(index: int | None, field: str, message: str) -> serializers.ValidationError:
    if index is None:
        return serializers.ValidationError({"items": [message]})
    return serializers.ValidationError({"items": {str(index): {field: [message]}}})


def _batch_envelope(request: Request) -> tuple[list[Any], dict[str, Any]]:
    """The raw item list and the file parts by name, or 400/413 for a malformed batch."""
    files = getattr(request, "FILES", None) or {}
    raw = request.data.get("items") if hasattr(request.data, "get") else None
    if files or isinstance(raw, str):
        if not isinstance(raw, str):
            raise _malformed(None, "items", "Send the items as a JSON list in the `items` field.")
        try:
            raw = loads_bounded(raw)
        except ValueError:
            raise _malformed(None, "items", "`items` is not valid JSON.") from None
    if raw is None:
        raise _malformed(None, "items", "This field is required: a list of items.")
    if not isinstance(raw, list):
        raise _malformed(None, "items", "Must be a list of items.")
    if len(raw) > BATCH_MAX_ITEMS:
        raise BatchTooLarge(
            f"A batch carries at most {BATCH_MAX_ITEMS} items; this one has {len(raw)}. "
            "Split it; nothing was stored."
        )
    if not raw:
        raise _malformed(None, "items", "The list is empty.")
    uploads: dict[str, Any] = {}
    for name in files:
        if len(files.getlist(name)) > 1:
            raise _malformed(None, "items", f"File part {name!r} is sent more than once.")
        uploads[name] = files[name]
    named: dict[str, int] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise _malformed(index, "non_field_errors", "Must be a JSON object (one item).")
        media = entry.get("media")
        if media in (None, ""):
            continue
        if not isinstance(media, str) or media not in uploads:
            raise _malformed(index, "media", "Must name a file part of this multipart request.")
        if media in named:
            raise _malformed(
                index, "media", f"File part {media!r} is already item {named[media]}'s."
            )
        named[media] = index
    unused = sorted(set(uploads) - set(named))
    if unused:
        # A part no item names would be dropped silently: the client would think it stored.
        raise _malformed(None, "items", f"File parts named by no item: {', '.join(unused)}.")
    return raw, uploads


class ItemBatchCreateApi(APIView):
    """Submit up to 500 flagged items in one request; one result per item, in request order.

    Each item is validated, stored and answered on its own (201 stored, 200 already stored,
    4xx refused with the single endpoint's error object): a bad item never fails the others.
    A malformed batch (not a list, an entry that is not an object, a file part named by no
    item) is refused whole with 400 naming the index and field; more than 500 items is 413.
    Idempotent per platform account + source + external_id, like `POST /api/v1/items`.
    """

    permission_classes = [CanSubmitItems]
    parser_classes = [MultiPartParser, BoundedJSONParser]

    @extend_schema(
        operation_id="items_batch_create",
        request={
            "application/json": ItemBatchInputSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "string",
                        "description": "The items as a JSON list; `media` names a file part.",
                    }
                },
                "additionalProperties": {"type": "string", "format": "binary"},
            },
        },
        responses={
            200: ItemBatchOutputSerializer,
            400: OpenApiResponse(description="Malformed batch (names the index and field)"),
            413: OpenApiResponse(description=f"More than {BATCH_MAX_ITEMS} items, or too big"),
        },
    )
    def post(self, request: Request) -> Response:
        raw, uploads = _batch_envelope(request)
        results: dict[int, BatchResult] = {}
        entries: list[BatchEntry] = []
        # One serializer validates every item, as DRF's ListSerializer does with its child: a
        # serializer per item deep-copies its ~20 declared fields each time, which was half the
        # request's CPU per item (profiled; benchmarks/LOAD.md). Errors keep the single
        # endpoint's shape (`serializer.errors`).
        serializer = ItemInputSerializer()
        for index, entry in enumerate(raw):
            media_part = entry.get("media")
            data = {k: v for k, v in entry.items() if k != "media"}
            try:
                valid = serializer.run_validation(
                    {**data, "media": uploads[media_part]} if media_part else data
                )
            except serializers.ValidationError as exc:
                detail = exc.detail
                fields = (
                    detail
                    if isinstance(detail, Mapping)
                    else {api_settings.NON_FIELD_ERRORS_KEY: detail}
                )
                results[index] = BatchResult(index, error=DomainError(fields=dict(fields)))
                continue
            entries.append(BatchEntry(index, item_input(valid), valid.get("media")))
        for result in items_submit_batch(
            entries=entries,
            actor=request.user,
            submitted_by=request.user,
            platform_account=platform_account_for(request),
        ):
            results[result.index] = result
        body: list[dict[str, Any]] = []
        counts = {"created": 0, "existing": 0, "failed": 0}
        for index in range(len(raw)):
            result = results[index]
            row: dict[str, Any] = {"index": index, "status": result.status}
            if result.error is not None:
                row["error"] = result.error.api_body()
                counts["failed"] += 1
            else:
                assert result.item is not None
                row["item"] = _created_body(result.item, result.created)
                counts["created" if result.created else "existing"] += 1
            body.append(row)
        return Response({"results": body, **counts}, status=status.HTTP_200_OK)
