"""User reports: a platform forwards a user's report about an item (creating the item first
when it is new)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.parsers import BoundedJSONParser
from moderation.api.items import (
    ItemInputSerializer,
    _CategoryField,
    item_input,
    items_for,
    platform_account_for,
)
from moderation.models import Item
from moderation.permissions import CanSubmitReports
from moderation.services.intake import item_submit, report_submit


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


class ReportCreateApi(APIView):
    """A user report about an item: adds a Flag; creates the item first if it is new."""

    permission_classes = [CanSubmitReports]
    parser_classes = [BoundedJSONParser, MultiPartParser]

    @extend_schema(
        operation_id="reports_create",
        request=ReportInputSerializer,
        responses={201: ReportCreatedSerializer, 200: ReportCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ReportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # Looked up inside the caller's intake namespace (issue 19): another platform's item with
        # the same source + external_id is neither revealed nor touched — this one gets its own.
        platform_account = platform_account_for(request)
        item = (
            items_for(request)
            .filter(
                source=data["source"],
                external_id=data["external_id"],
                platform_account=platform_account,
            )
            .first()
        )
        if item is None:
            if Item.objects.filter(
                source=data["source"],
                external_id=data["external_id"],
                platform_account=platform_account,
            ).exists():
                # In the caller's namespace but not readable by it (an in-house item in a case
                # this console user may not see): don't reveal it, don't touch it.
                raise ValidationError({"external_id": "Unknown item for this source."})
            item_data = data.get("item")
            if not item_data:
                raise ValidationError({"item": "The item is new: send its details in `item`."})
            if (item_data["source"], item_data["external_id"]) != (
                data["source"],
                data["external_id"],
            ):
                raise ValidationError({"item": "item.source/external_id must match the report."})
            item, _ = item_submit(
                data=item_input(item_data, flag_source="user_report"),
                upload=item_data.get("media"),
                actor=request.user,
                submitted_by=request.user,
                platform_account=platform_account,
            )
        flag, created = report_submit(
            item=item,
            reporter=data.get("reporter", ""),
            report_id=data.get("report_id", ""),
            category=data.get("category"),
            note=data.get("note", ""),
            actor=request.user,
            submitted_by=request.user,
        )
        return Response(
            ReportCreatedSerializer(
                {"item_id": item.pk, "flag_id": flag.pk, "created": created}
            ).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
