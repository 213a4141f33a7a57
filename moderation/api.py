"""Platform and console API: one APIView per operation, thin, calling services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import ReadPermission, is_platform_request

from .hashlists import HashListError, hash_import_start, hash_list_upsert
from .media.validation import MediaRejected
from .models import HashImport, HashList, Item
from .permissions import CanReadItems, CanSubmitItems, CanSubmitReports
from .selectors import case_visible_to
from .serializers import (
    HashImportInputSerializer,
    HashImportSerializer,
    HashListInputSerializer,
    HashListSerializer,
    ItemCreatedSerializer,
    ItemDetailSerializer,
    ItemInputSerializer,
    ReportCreatedSerializer,
    ReportInputSerializer,
)
from .services import ItemInput, item_submit, report_submit


class MediaRejectedError(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "media_rejected"

    def __init__(self, exc: MediaRejected) -> None:
        code = getattr(exc, "code", "media_rejected")
        if code == "too_large":
            self.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        super().__init__(detail=getattr(exc, "message", str(exc)), code=code)


def _actor_for(request: Request) -> Any:
    return request.user


def _item_input(data: dict[str, Any], *, flag_source: str = "api") -> ItemInput:
    fields = {k: v for k, v in data.items() if k != "media"}
    return ItemInput(flag_source=flag_source, **fields)


def _items_for(request: Request) -> QuerySet[Item]:
    qs = Item.objects.select_related("media", "category_hint").prefetch_related(
        "flags__category", "media__matches__hash_list", "media__matches__known_hash"
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
        try:
            item, created = item_submit(
                data=_item_input(serializer.validated_data),
                upload=upload,
                actor=_actor_for(request),
                submitted_by=request.user,
            )
        except MediaRejected as exc:
            raise MediaRejectedError(exc) from exc
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
        item = get_object_or_404(_items_for(request), pk=item_id)
        return Response(ItemDetailSerializer(item).data)


class ReportCreateApi(APIView):
    """A user report about an item: adds a Flag; creates the item first if it is new."""

    permission_classes = [CanSubmitReports]
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="reports_create",
        request=ReportInputSerializer,
        responses={201: ReportCreatedSerializer, 200: ReportCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ReportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = (
            _items_for(request)
            .filter(source=data["source"], external_id=data["external_id"])
            .first()
        )
        if item is None:
            if Item.objects.filter(source=data["source"], external_id=data["external_id"]).exists():
                # Exists but belongs to another submitter: don't reveal it, don't touch it.
                raise ValidationError({"external_id": "Unknown item for this source."})
            item_data = data.get("item")
            if not item_data:
                raise ValidationError({"item": "The item is new: send its details in `item`."})
            if (item_data["source"], item_data["external_id"]) != (
                data["source"],
                data["external_id"],
            ):
                raise ValidationError({"item": "item.source/external_id must match the report."})
            try:
                item, _ = item_submit(
                    data=_item_input(item_data, flag_source="user_report"),
                    upload=item_data.get("media"),
                    actor=_actor_for(request),
                    submitted_by=request.user,
                )
            except MediaRejected as exc:
                raise MediaRejectedError(exc) from exc
        flag, created = report_submit(
            item=item,
            reporter=data.get("reporter", ""),
            report_id=data.get("report_id", ""),
            category=data.get("category"),
            note=data.get("note", ""),
            actor=_actor_for(request),
            submitted_by=request.user,
        )
        return Response(
            ReportCreatedSerializer(
                {"item_id": item.pk, "flag_id": flag.pk, "created": created}
            ).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class HashListListCreateApi(APIView):
    """List hash lists (leads and admins) or create one (admins)."""

    permission_classes = [ReadPermission]
    queryset = HashList.objects.all()

    @extend_schema(operation_id="hash_lists_list", responses=HashListSerializer(many=True))
    def get(self, request: Request) -> Response:
        lists = HashList.objects.prefetch_related("hashes").order_by("name")
        return Response(HashListSerializer(lists, many=True).data)

    @extend_schema(
        operation_id="hash_lists_create",
        request=HashListInputSerializer,
        responses={201: HashListSerializer, 200: HashListSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = HashListInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            hash_list, created = hash_list_upsert(actor=request.user, **serializer.validated_data)
        except HashListError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(
            HashListSerializer(hash_list).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class HashImportCreateApi(APIView):
    """Upload a CSV into a list; a worker imports it. Poll the returned import for progress."""

    permission_classes = [ReadPermission]
    queryset = HashList.objects.all()
    parser_classes = [MultiPartParser]

    def get_permissions(self) -> list[Any]:
        return [_ChangeHashList()]

    @extend_schema(
        operation_id="hash_imports_create",
        request={"multipart/form-data": HashImportInputSerializer},
        responses={202: HashImportSerializer},
    )
    def post(self, request: Request, list_id: int) -> Response:
        hash_list = get_object_or_404(HashList, pk=list_id)
        serializer = HashImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            imp = hash_import_start(
                hash_list=hash_list,
                upload=serializer.validated_data["file"],
                actor=request.user,
                created_by=request.user,
            )
        except HashListError as exc:
            raise ValidationError({"file": str(exc)}) from exc
        return Response(HashImportSerializer(imp).data, status=status.HTTP_202_ACCEPTED)


class HashImportDetailApi(APIView):
    permission_classes = [ReadPermission]
    queryset = HashList.objects.all()

    @extend_schema(operation_id="hash_imports_retrieve", responses=HashImportSerializer)
    def get(self, request: Request, import_id: int) -> Response:
        imp = get_object_or_404(HashImport.objects.select_related("hash_list"), pk=import_id)
        return Response(HashImportSerializer(imp).data)


class _ChangeHashList(ReadPermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("moderation.change_hashlist"))
