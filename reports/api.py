"""Referral API: draft, approve (a second lead), status, download. One APIView per operation.

Imports models, selectors and the packet services. Refusals are `core.errors.DomainError`s,
rendered by the one exception handler (`core.api`): a `PacketError` is a 400 on `detail`, a
`PacketConflict` a 409.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import HasPerm
from moderation.selectors import case_visible_to

from .destinations import EDITABLE, destination_create, destination_update
from .models import Destination, ReferralPacket
from .ncmec import ncmec_send
from .packets import (
    CHANNELS,
    packet_acknowledge,
    packet_approve,
    packet_draft,
    packet_open_for_download,
    packet_record_submission,
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


class CanViewDestinations(HasPerm):
    perm = "reports.view_destination"


class CanAddDestination(HasPerm):
    perm = "reports.add_destination"


class CanChangeDestination(HasPerm):
    perm = "reports.change_destination"


class DestinationSerializer(serializers.ModelSerializer):
    code = serializers.CharField(
        read_only=True, help_text="Stable code (a police force's from the force list); may be ''."
    )
    has_contact_route = serializers.BooleanField(read_only=True)

    class Meta:
        model = Destination
        fields = ("id", "code", *EDITABLE, "has_contact_route", "updated_at")
        read_only_fields = ("id", "code", "has_contact_route", "updated_at")


class DestinationInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=Destination.Kind.choices)
    police_force = serializers.CharField(max_length=100, required=False, allow_blank=True)
    jurisdiction = serializers.CharField(max_length=100, required=False)
    contact_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    contact_email = serializers.EmailField(required=False, allow_blank=True)
    contact_phone = serializers.CharField(max_length=50, required=False, allow_blank=True)
    contact_url = serializers.URLField(required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=Destination.Mode.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class DestinationListApi(APIView):
    """Destinations a referral can go to (leads and admins); admins add them."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [CanAddDestination()]
        return [CanViewDestinations()]

    @extend_schema(
        operation_id="destinations_list",
        parameters=[
            OpenApiParameter("kind", str, enum=Destination.Kind.values),
            OpenApiParameter("q", str, description="Search by name or code."),
        ],
        responses=DestinationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        destinations = Destination.objects.all()
        kind = request.query_params.get("kind")
        if kind:
            destinations = destinations.filter(kind=kind)
        query = request.query_params.get("q", "").strip()
        if query:
            destinations = destinations.filter(Q(name__icontains=query) | Q(code__icontains=query))
        return Response(DestinationSerializer(destinations, many=True).data)

    @extend_schema(
        operation_id="destinations_create",
        request=DestinationInputSerializer,
        responses={201: DestinationSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = DestinationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        destination = destination_create(actor=request.user, **serializer.validated_data)
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)


class DestinationDetailApi(APIView):
    def get_permissions(self) -> list[Any]:
        if self.request.method == "PATCH":
            return [CanChangeDestination()]
        return [CanViewDestinations()]

    @extend_schema(operation_id="destinations_retrieve", responses=DestinationSerializer)
    def get(self, request: Request, destination_id: int) -> Response:
        destination = Destination.objects.filter(pk=destination_id).first()
        if destination is None:
            raise Http404
        return Response(DestinationSerializer(destination).data)

    @extend_schema(
        operation_id="destinations_partial_update",
        request=DestinationInputSerializer(partial=True),
        responses=DestinationSerializer,
    )
    def patch(self, request: Request, destination_id: int) -> Response:
        destination = Destination.objects.filter(pk=destination_id).first()
        if destination is None:
            raise Http404
        serializer = DestinationInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        destination = destination_update(
            actor=request.user, destination=destination, **serializer.validated_data
        )
        return Response(DestinationSerializer(destination).data)


class ReferralInputSerializer(serializers.Serializer):
    cases = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=100)
    destination = serializers.PrimaryKeyRelatedField(
        queryset=Destination.objects.all(),
        help_text="A destination id from GET /api/v1/destinations.",
    )
    priority = serializers.ChoiceField(choices=ReferralPacket.Priority.choices)
    summary = serializers.CharField(max_length=20000)
    identity_documents = serializers.ChoiceField(
        choices=ReferralPacket.IdentityDocuments.choices,
        required=False,
        help_text="Whether the provider holds identity documents for the user (required for "
        "the NCA: Schedule 1 para 5).",
    )
    identity_documents_detail = serializers.CharField(
        max_length=1000, required=False, allow_blank=True
    )


class ApproveInputSerializer(serializers.Serializer):
    declaration_confirmed = serializers.BooleanField(
        default=False,
        help_text="The approving lead confirms the packet's declaration (required: true).",
    )


class SentInputSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=CHANNELS)
    submitted_at = serializers.DateTimeField(required=False)
    reference = serializers.CharField(max_length=200, required=False, allow_blank=True)


class AcknowledgeInputSerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=200)


class ReferralSerializer(serializers.ModelSerializer):
    reference = serializers.CharField()
    destination = serializers.CharField(source="destination.name")
    destination_id = serializers.IntegerField()
    cases = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = ReferralPacket
        fields = (
            "id",
            "reference",
            "status",
            "priority",
            "destination",
            "destination_id",
            "cases",
            "progress",
            "sha256",
            "manifest_sha256",
            "error",
            "drafted_by",
            "approved_by",
            "approved_at",
            "exported_at",
            "identity_documents",
            "identity_documents_detail",
            "declaration_confirmed_at",
            "detected_at",
            "report_due_at",
            "report_breached_at",
            "submitted_at",
            "submitted_by",
            "submission_channel",
            "ack_due_at",
            "ack_breached_at",
            "external_reference",
            "acknowledged_at",
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
            identity_documents=data.get("identity_documents", ""),
            identity_documents_detail=data.get("identity_documents_detail", ""),
        )
        packet = packet_submit(packet=packet, lead=request.user)
        return Response(ReferralSerializer(packet).data, status=status.HTTP_201_CREATED)


class ReferralApproveApi(APIView):
    permission_classes = [CanApprove]

    @extend_schema(
        operation_id="referrals_approve",
        request=ApproveInputSerializer,
        responses={
            200: ReferralSerializer,
            409: OpenApiResponse(description="Refused; state unchanged"),
        },
    )
    def post(self, request: Request, packet_id: int) -> Response:
        packet = _packet_for(request, packet_id)
        serializer = ApproveInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        packet_approve(
            packet=packet,
            lead=request.user,
            declaration_confirmed=serializer.validated_data["declaration_confirmed"],
        )
        packet.refresh_from_db()
        return Response(ReferralSerializer(packet).data)


class ReferralSentApi(APIView):
    """Record that the downloaded packet was sent to the recipient (how, when, by whom)."""

    permission_classes = [CanDownload]

    @extend_schema(
        operation_id="referrals_sent",
        request=SentInputSerializer,
        responses={200: ReferralSerializer, 409: OpenApiResponse(description="Refused")},
    )
    def post(self, request: Request, packet_id: int) -> Response:
        packet = _packet_for(request, packet_id)
        self.check_object_permissions(request, packet)
        serializer = SentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        packet = packet_record_submission(
            packet=packet, lead=request.user, **serializer.validated_data
        )
        return Response(ReferralSerializer(packet).data)


class ReferralNcmecSendApi(APIView):
    """Send an NCMEC packet's signed CyberTipline XML (/submit then /finish); the report ID
    becomes the packet's recipient reference. Refusals leave the packet unchanged."""

    permission_classes = [CanDownload]

    @extend_schema(
        operation_id="referrals_ncmec_send",
        request=None,
        responses={
            200: ReferralSerializer,
            400: OpenApiResponse(description="Refused (not configured, dry run, wrong kind)"),
            409: OpenApiResponse(description="Refused; state unchanged"),
        },
    )
    def post(self, request: Request, packet_id: int) -> Response:
        packet = _packet_for(request, packet_id)
        self.check_object_permissions(request, packet)
        packet = ncmec_send(packet=packet, lead=request.user)
        return Response(ReferralSerializer(packet).data)


class ReferralAcknowledgeApi(APIView):
    """Record the recipient's reference for a sent packet."""

    permission_classes = [CanDownload]

    @extend_schema(
        operation_id="referrals_acknowledge",
        request=AcknowledgeInputSerializer,
        responses={200: ReferralSerializer},
    )
    def post(self, request: Request, packet_id: int) -> Response:
        packet = _packet_for(request, packet_id)
        self.check_object_permissions(request, packet)
        serializer = AcknowledgeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        packet = packet_acknowledge(
            packet=packet, lead=request.user, reference=serializer.validated_data["reference"]
        )
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
