"""Case API for console users: claim next, read, decide, release. One APIView per operation."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Conflict

from .models import Case
from .queue import CaseNotHeld, case_claim_next, case_release
from .review import ReviewError, StaleCase, decision_record
from .selectors import case_detail
from .serializers import CaseDetailSerializer, DecisionInputSerializer, DecisionSerializer


class _HasPerm:
    """Deny unless the console user has one model permission (platform tokens never do)."""

    perm = ""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.perm))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class CanViewCases(_HasPerm):
    perm = "moderation.view_case"


class CanClaimCases(_HasPerm):
    perm = "moderation.claim_case"


class CanDecideCases(_HasPerm):
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
