"""Referral API: draft, approve (a second lead), status, download. One APIView per operation.

Imports models, selectors and the packet services. Refusals are `core.errors.DomainError`s,
rendered by the one exception handler (`core.api`): a `PacketError` is a 400 on `detail`, a
`PacketConflict` a 409.
"""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import HasPerm
from moderation.selectors import case_visible_to

from .models import Destination, ReferralPacket
from .packets import (
    packet_approve,
    packet_draft,
    packet_open_for_download,
    packet_submit,
)
from .selectors.packets import packets_for


class _HasPerm(HasPerm):
    object_level = True


class CanDraft(_HasPerm):
    perm = "reports.add_referralpacket"


class CanView(_HasPerm):
    perm = "reports.view_referralpacket"


class CanApprove(_HasPerm):
    perm = "reports.approve_referralpacket"


class CanDownload(_HasPerm):
    perm = "reports.download_referralpacket"


class ReferralInputSerializer(serializers.Serializer):
    cases = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=100)
    destination = serializers.PrimaryKeyRelatedField(queryset=Destination.objects.all())
    priority = serializers.ChoiceField(choices=ReferralPacket.Priority.choices)
    summary = serializers.CharField(max_length=20000)


class ReferralSerializer(serializers.ModelSerializer):
    reference = serializers.CharField()
    destination = serializers.CharField(source="destination.name")
    cases = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = ReferralPacket
        fields = (
            "id",
            "reference",
            "status",
            "priority",
            "destination",
            "cases",
            "progress",
            "sha256",
            "manifest_sha256",
            "error",
            "drafted_by",
            "approved_by",
            "approved_at",
            "exported_at",
            "external_reference",
            "created_at",
        )


def _packet_for(request: Request, packet_id: int) -> ReferralPacket:
    packet = packets_for(request.user).filter(pk=packet_id).first()
    if packet is None:
        raise Http404
    return packet


class ReferralCreateApi(APIView):
    """Draft a referral for cases and submit it for a second lead's approval."""

    permission_classes = [CanDraft]

    @extend_schema(
        operation_id="referrals_create",
        request=ReferralInputSerializer,
        responses={201: ReferralSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ReferralInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        cases = list(case_visible_to(request.user).filter(pk__in=data["cases"]))
        if len(cases) != len(set(data["cases"])):
            raise ValidationError({"cases": "Unknown case id(s)."})
        packet = packet_draft(
            cases=cases,
            destination=data["destination"],
            priority=data["priority"],
            summary=data["summary"],
            actor=request.user,
            drafted_by=request.user,
        )
        packet = packet_submit(packet=packet, lead=request.user)
        return Response(ReferralSerializer(packet).data, status=status.HTTP_201_CREATED)


class ReferralApproveApi(APIView):
    permission_classes = [CanApprove]

    @extend_schema(
        operation_id="referrals_approve",
        request=None,
        responses={
            200: ReferralSerializer,
            409: OpenApiResponse(description="Refused; state unchanged"),
        },
    )
    def post(self, request: Request, packet_id: int) -> Response:
        packet = _packet_for(request, packet_id)
        packet_approve(packet=packet, lead=request.user)
        packet.refresh_from_db()
        return Response(ReferralSerializer(packet).data)


class ReferralDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(operation_id="referrals_retrieve", responses=ReferralSerializer)
    def get(self, request: Request, packet_id: int) -> Response:
        return Response(ReferralSerializer(_packet_for(request, packet_id)).data)


class ReferralDownloadApi(APIView):
    """The signed zip (text, metadata and hashes; never imagery). Every download is logged."""

    permission_classes = [CanDownload]

    @extend_schema(
        operation_id="referrals_download",
        responses={
            (200, "application/zip"): OpenApiResponse(description="The packet zip"),
            409: OpenApiResponse(description="Not ready"),
        },
    )
    def get(self, request: Request, packet_id: int) -> FileResponse:
        packet = _packet_for(request, packet_id)
        path = packet_open_for_download(packet=packet, lead=request.user)
        response = FileResponse(
            path.open("rb"),
            content_type="application/zip",
            as_attachment=True,
            filename=f"{packet.reference}.zip",
        )
        response["Cache-Control"] = "no-store, private"
        return response
