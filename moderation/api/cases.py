"""Cases for console users: claim the next, read, decide, release, mark a child at immediate
risk."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import HasPerm
from core.roles import is_lead
from moderation.api.items import ItemDetailSerializer
from moderation.models import Case, Decision, Escalation, Item
from moderation.selectors import case_detail
from moderation.services.escalations import case_mark_immediate_risk
from moderation.services.queue import case_claim_next, case_release
from moderation.services.review import decision_record
from principles.models import HarmCategory


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


class ItemSubjectSerializer(serializers.ModelSerializer):
    """The reported user's details on one item, for safety leads and admins only."""

    account_id = serializers.CharField(source="subject_account_id")
    username = serializers.CharField(source="subject_username")
    display_name = serializers.CharField(source="subject_display_name")
    email = serializers.CharField(source="subject_email")
    phone = serializers.CharField(source="subject_phone")
    ip_address = serializers.IPAddressField(source="subject_ip", allow_null=True)
    port = serializers.IntegerField(source="subject_port", allow_null=True)
    ip_seen_at = serializers.DateTimeField(source="subject_ip_seen_at", allow_null=True)
    country = serializers.CharField(source="subject_country")
    account_created_at = serializers.DateTimeField(
        source="subject_account_created_at", allow_null=True
    )
    linked_accounts = serializers.ListField(
        source="subject_linked_accounts", child=serializers.CharField()
    )

    class Meta:
        model = Item
        fields = (
            "account_id",
            "username",
            "display_name",
            "email",
            "phone",
            "ip_address",
            "port",
            "ip_seen_at",
            "country",
            "account_created_at",
            "linked_accounts",
        )


class ItemSummarySerializer(ItemDetailSerializer):
    """An item inside a case: the detail fields plus its text, URL and subject account; and,
    for safety leads and admins only, the reported user's details (`subject`)."""

    # Not read-only only so that the schema marks it optional: it is omitted for moderators.
    subject = ItemSubjectSerializer(
        source="*",
        required=False,
        help_text="The reported user's details: only for safety leads and admins.",
    )

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
            "subject",
        )

    def to_representation(self, instance: Item) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Default deny: without a request in the context (or for a moderator) no subject.
        request = self.context.get("request")
        if request is None or not is_lead(request.user):
            data.pop("subject", None)
        return data


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


class CanViewCases(HasPerm):
    perm = "moderation.view_case"


class CanClaimCases(HasPerm):
    perm = "moderation.claim_case"


class CanDecideCases(HasPerm):
    perm = "moderation.decide_case"


def _case_for(request: Request, case_id: int) -> Case:
    try:
        return case_detail(user=request.user, pk=case_id)
    except Case.DoesNotExist:
        raise Http404 from None


def _case_body(request: Request, case_id: int) -> dict[str, Any]:
    """The case as its requester may see it (the request decides whether `subject` shows)."""
    case = _case_for(request, case_id)
    return CaseDetailSerializer(case, context={"request": request}).data


class CaseClaimNextApi(APIView):
    """Claim the next case in queue order (or get the one you already hold)."""

    permission_classes = [CanClaimCases]

    @extend_schema(
        operation_id="cases_next",
        request=None,
        responses={
            200: CaseDetailSerializer,
            204: OpenApiResponse(description="The queue is empty"),
        },
    )
    def post(self, request: Request) -> Response:
        case = case_claim_next(user=request.user)
        if case is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_case_body(request, case.pk))


class CaseDetailApi(APIView):
    permission_classes = [CanViewCases]

    @extend_schema(operation_id="cases_retrieve", responses=CaseDetailSerializer)
    def get(self, request: Request, case_id: int) -> Response:
        return Response(_case_body(request, case_id))


class CaseDecisionApi(APIView):
    """Record a decision on a case you hold (409 if you don't)."""

    permission_classes = [CanDecideCases]

    @extend_schema(
        operation_id="cases_decision",
        request=DecisionInputSerializer,
        responses={
            201: DecisionSerializer,
            409: OpenApiResponse(description="You don't hold the case"),
        },
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        serializer = DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        decision = decision_record(
            case=case,
            moderator=request.user,
            outcome=data["outcome"],
            categories=list(data.get("categories", [])),
            rationale=data.get("rationale", ""),
        )
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class CaseReleaseApi(APIView):
    """Give a case back to the queue (its holder, or a lead)."""

    permission_classes = [CanClaimCases]

    @extend_schema(
        operation_id="cases_release",
        request=None,
        responses={
            200: CaseDetailSerializer,
            409: OpenApiResponse(description="You don't hold the case"),
        },
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        case_release(case=case, user=request.user)
        return Response(_case_body(request, case_id))


class CanMarkImmediateRisk(HasPerm):
    perm = "moderation.mark_immediate_risk"


class ImmediateRiskInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class EscalationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Escalation
        fields = (
            "id",
            "case",
            "tier",
            "status",
            "reason",
            "opened_at",
            "sla_due_at",
            "level",
            "page_count",
            "acknowledged_at",
            "called_at",
            "police_force",
            "incident_reference",
        )


class CaseImmediateRiskApi(APIView):
    """Mark a child at immediate risk: the case becomes P0 and on-call leads are paged."""

    permission_classes = [CanMarkImmediateRisk]

    @extend_schema(
        operation_id="cases_immediate_risk",
        request=ImmediateRiskInputSerializer,
        responses={201: EscalationSerializer},
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        serializer = ImmediateRiskInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        escalation = case_mark_immediate_risk(
            case=case, actor=request.user, reason=serializer.validated_data.get("reason", "")
        )
        return Response(EscalationSerializer(escalation).data, status=status.HTTP_201_CREATED)
