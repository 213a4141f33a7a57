from rest_framework import serializers

from .models import Principle


class PrincipleSerializer(serializers.ModelSerializer):
    source = serializers.URLField(source="source_url")

    class Meta:
        model = Principle
        fields = (
            "number",
            "theme",
            "title",
            "text",
            "source",
            "source_title",
            "provenance",
            "checked",
        )
