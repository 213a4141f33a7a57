"""Hash lists for leads and admins: list, create or update a list, upload an import and poll
its progress."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import ReadPermission
from moderation.matching.banks import bank_status
from moderation.models import HashImport, HashList
from moderation.services.hashlists import hash_import_start, hash_list_upsert


class HashListSerializer(serializers.ModelSerializer):
    size = serializers.IntegerField(read_only=True, source="hashes.count")
    index = serializers.SerializerMethodField(
        help_text="This server's match index of the list, read-only: base, delta and "
        "tombstones, and freshness (seconds from an entry's fetch or import to matchable)."
    )

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
            "index",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "version", "size", "index", "created_at", "updated_at")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_index(self, obj: HashList) -> dict[str, Any]:
        return bank_status(obj)


class HashListInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    provider = serializers.ChoiceField(choices=HashList.Provider.choices, required=False)
    algorithm = serializers.ChoiceField(choices=HashList.Algorithm.choices)
    threshold = serializers.IntegerField(min_value=0, max_value=31, required=False)
    enabled = serializers.BooleanField(required=False)
    verified = serializers.BooleanField(required=False)


class HashImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="csv: `hash,category,metadata` rows (metadata a JSON object or text); "
        "signals: `<signal type> <hash>` lines; jsonl: one entry per line; vPDQ lists: a vpdq "
        "file (one video) or JSON lines"
    )
    format = serializers.ChoiceField(
        choices=HashImport.Format.choices, default=HashImport.Format.CSV, required=False
    )
    sync = serializers.BooleanField(
        default=False,
        required=False,
        help_text="Make the list equal the file: its entries absent from the file are "
        "withdrawn (their matches stay in case history, marked withdrawn).",
    )
    category = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


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
            "withdrawn",
            "format",
            "sync",
            "error",
            "created_at",
            "finished_at",
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
        hash_list, created = hash_list_upsert(actor=request.user, **serializer.validated_data)
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
        data = serializer.validated_data
        imp = hash_import_start(
            hash_list=hash_list,
            upload=data["file"],
            actor=request.user,
            created_by=request.user,
            fmt=data["format"],
            sync=data["sync"],
            category=data["category"],
        )
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
