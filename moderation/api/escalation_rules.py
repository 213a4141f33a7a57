"""Escalation rules for admins: list and create. An invalid rule gets 400 with every reason
under `fields.rule`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import ReadPermission
from moderation.models import EscalationRule
from moderation.rules.services import rule_save


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
        rule = rule_save(
            actor=request.user,
            name=data["name"],
            conditions=data.get("conditions"),
            actions=data.get("actions"),
            order=data.get("order", 100),
            enabled=data.get("enabled", True),
            description=data.get("description", ""),
        )
        return Response(EscalationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)
