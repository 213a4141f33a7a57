"""Case API for console users: claim next, read, decide, release. One APIView per operation."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Conflict
from core.permissions import HasPerm, ReadPermission

from .escalations import case_mark_immediate_risk
from .models import Case, Escalation, EscalationRule
from .queue import CaseNotHeld, case_claim_next, case_release
from .review import ReviewError, StaleCase, decision_record
from .rules import RuleInvalid, rule_save
from .selectors import case_detail
from .serializers import CaseDetailSerializer, DecisionInputSerializer, DecisionSerializer


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
        return Response(CaseDetailSerializer(_case_for(request, case.pk)).data)


class CaseDetailApi(APIView):
    permission_classes = [CanViewCases]

    @extend_schema(operation_id="cases_retrieve", responses=CaseDetailSerializer)
    def get(self, request: Request, case_id: int) -> Response:
        return Response(CaseDetailSerializer(_case_for(request, case_id)).data)


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
        try:
            decision = decision_record(
                case=case,
                moderator=request.user,
                outcome=data["outcome"],
                categories=list(data.get("categories", [])),
                rationale=data.get("rationale", ""),
            )
        except (CaseNotHeld, StaleCase) as exc:
            raise Conflict(str(exc)) from exc
        except ReviewError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
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
        try:
            case_release(case=case, user=request.user)
        except CaseNotHeld as exc:
            raise Conflict(str(exc)) from exc
        return Response(CaseDetailSerializer(_case_for(request, case_id)).data)


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


class EscalationRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = EscalationRule
        fields = (
            "id",
            "name",
            "order",
            "enabled",
            "version",
            "conditions",
            "actions",
            "description",
            "last_error",
            "updated_at",
        )
        read_only_fields = ("id", "version", "last_error", "updated_at")


class EscalationRuleListCreateApi(APIView):
    """List and create escalation rules (admins). Invalid rules get 400 with every reason."""

    permission_classes = [ReadPermission]
    queryset = EscalationRule.objects.all()

    @extend_schema(
        operation_id="escalation_rules_list", responses=EscalationRuleSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        return Response(EscalationRuleSerializer(EscalationRule.objects.all(), many=True).data)

    @extend_schema(
        operation_id="escalation_rules_create",
        request=EscalationRuleSerializer,
        responses={201: EscalationRuleSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = EscalationRuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            rule = rule_save(
                actor=request.user,
                name=data["name"],
                conditions=data.get("conditions"),
                actions=data.get("actions"),
                order=data.get("order", 100),
                enabled=data.get("enabled", True),
                description=data.get("description", ""),
            )
        except RuleInvalid as exc:
            raise ValidationError({"rule": exc.errors}) from exc
        return Response(EscalationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)
