from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import ReadPermission

from .selectors import principle_list
from .serializers import PrincipleSerializer


class PrincipleListApi(APIView):
    """The 12 Interim Code principles, each with where its wording comes from (provenance)."""

    permission_classes = [ReadPermission]
    queryset = principle_list()

    @extend_schema(responses=PrincipleSerializer(many=True), operation_id="principles_list")
    def get(self, request: Request) -> Response:
        return Response(PrincipleSerializer(principle_list(), many=True).data)
