"""Inputs and outputs of the HMA routes, shaped as HMA's pydantic schemas
(OpenMediaMatch/schemas/{hashing,matching,curation,shared}.py).

Query parameters and JSON bodies are checked here (a failure is a 400 with ``fields``); the
shapes HMA keys by signal type or bank name are documented as raw OpenAPI schemas.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import BANK_NAME_MAX_LENGTH

# --- Query parameters -----------------------------------------------------------------------


class _Csv(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=True, max_length=10000, **kwargs)


class HashQuerySerializer(serializers.Serializer):
    types = _Csv(help_text="Comma-separated signal types to compute (default: all enabled).")


class RawLookupQuerySerializer(serializers.Serializer):
    """HMA's RawLookupRequest, plus Safeguard's optional `quality`."""

    signal = serializers.CharField(max_length=300000, help_text="The hash to look up.")
    signal_type = serializers.CharField(max_length=64, help_text="pdq, video_md5, vpdq, …")
    banks = _Csv(help_text="Comma-separated bank names to search (default: all).")
    include_distance = serializers.BooleanField(
        required=False, default=False, help_text="Return `{bank_content_id, distance}` objects."
    )
    quality = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        help_text="Safeguard: the PDQ quality of the media the hash came from; lists with a "
        "higher floor are not searched (a degenerate hash counts as 0).",
    )


class _CoinflipSerializer(serializers.Serializer):
    banks = _Csv(help_text="Comma-separated bank names to search (default: all).")
    seed = serializers.CharField(
        required=False, max_length=1000, help_text="Seed of the coin flip (consistent answers)."
    )
    bypass_coinflip = serializers.BooleanField(
        required=False, default=False, help_text="Report every bank whatever its ratio."
    )
    notes = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Safeguard: add `safeguard_notes` (lists not searched by the quality gate, "
        "quarantined matches).",
    )


class LookupQuerySerializer(_CoinflipSerializer):
    """HMA's LookupRequest (GET), plus Safeguard's optional `quality` and `notes`."""

    signal = serializers.CharField(required=False, max_length=300000)
    signal_type = serializers.CharField(required=False, max_length=64)
    url = serializers.CharField(
        required=False,
        max_length=2000,
        help_text="Not offered: fetching URLs from the server is an SSRF risk. POST the file.",
    )
    content_type = serializers.CharField(required=False, max_length=64)
    types = _Csv()
    quality = serializers.IntegerField(required=False, min_value=0, max_value=100)


class LookupUploadQuerySerializer(_CoinflipSerializer):
    types = _Csv(help_text="Comma-separated signal types to compute (default: all enabled).")


class IndexStatusQuerySerializer(serializers.Serializer):
    signal_type = serializers.CharField(required=False, max_length=64)


class BankContentQuerySerializer(serializers.Serializer):
    include_signals = serializers.BooleanField(required=False, default=False)
    signal_type = serializers.CharField(
        required=False, max_length=64, help_text="Include the content's signal of this type."
    )


# --- Bodies ---------------------------------------------------------------------------------


class UploadSerializer(serializers.Serializer):
    """One file, in the field named after its content type (HMA: `photo` or `video`)."""

    photo = serializers.FileField(required=False, use_url=False)
    video = serializers.FileField(required=False, use_url=False)


class BankCreateSerializer(serializers.Serializer):
    """HMA's BankCreateRequest."""

    name = serializers.CharField(
        max_length=BANK_NAME_MAX_LENGTH, help_text="UPPER_WITH_UNDERSCORE, e.g. MY_BANK."
    )
    enabled_ratio = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)


class BankUpdateSerializer(serializers.Serializer):
    """HMA's BankUpdateRequest."""

    name = serializers.CharField(required=False, allow_null=True, max_length=BANK_NAME_MAX_LENGTH)
    enabled_ratio = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)


# --- Outputs --------------------------------------------------------------------------------


class BankSerializer(serializers.Serializer):
    """HMA's BankConfig."""

    name = serializers.CharField()
    matching_enabled_ratio = serializers.FloatField()


class BankContentSerializer(serializers.Serializer):
    """HMA's BankContentResponse, plus Safeguard's list, provider, category and state."""

    id = serializers.IntegerField()
    disable_until_ts = serializers.IntegerField(
        help_text="HMA: 1 enabled; 0 disabled (here: quarantined, matched for no automatic "
        "action until a lead reviews it)."
    )
    collab_metadata = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField())
    )
    original_media_uri = serializers.CharField(allow_null=True)
    bank = BankSerializer()
    signals = serializers.DictField(child=serializers.CharField(), required=False)
    list = serializers.CharField()
    provider = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    quarantined = serializers.BooleanField()
    low_quality = serializers.BooleanField()
    added_at = serializers.DateTimeField()


class MessageSerializer(serializers.Serializer):
    """HMA's SuccessResponse."""

    message = serializers.CharField()


class DeletedSerializer(serializers.Serializer):
    deleted = serializers.IntegerField()


# --- Raw schemas of the shapes keyed by signal type or bank name ---------------------------

SIGNALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Signal type → hash value (HMA's HashResponse).",
    "additionalProperties": {"type": "string"},
}
MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "HMA's MatchWithDistance, plus Safeguard's provenance.",
    "required": ["bank_content_id", "distance"],
    "properties": {
        "bank_content_id": {"type": "integer"},
        "distance": {"type": "string", "description": "Bits, or vPDQ's `q%[c%]`."},
        "category": {"type": "string", "description": "The provider's category (IWF A/B/C)."},
        "provider": {"type": "string"},
        "algorithm": {"type": "string"},
        "transform": {"type": "string", "description": "PDQ: how the upload is turned."},
        "query_percent": {"type": "number"},
        "listed_percent": {"type": "number"},
        "provenance": {
            "type": "object",
            "properties": {
                "list": {"type": "string"},
                "list_version": {"type": "integer"},
                "verified": {"type": "boolean"},
                "added_at": {"type": "string", "format": "date-time", "nullable": True},
            },
        },
    },
}
NOTES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Only with notes=true.",
    "items": {"type": "object", "additionalProperties": True},
}
BANK_MATCHES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Bank name → matches (HMA's LookupResponse); with notes=true also "
    "`safeguard_notes`.",
    "properties": {"safeguard_notes": NOTES_SCHEMA},
    "additionalProperties": {"type": "array", "items": MATCH_SCHEMA},
}
SIGNAL_BANK_MATCHES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Signal type → bank name → matches; with notes=true also `safeguard_notes`.",
    "properties": {"safeguard_notes": NOTES_SCHEMA},
    "additionalProperties": {
        "type": "object",
        "additionalProperties": {"type": "array", "items": MATCH_SCHEMA},
    },
}
RAW_LOOKUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "HMA's RawLookupResponse: ids, or objects with include_distance=true.",
    "required": ["matches"],
    "properties": {
        "matches": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "integer"},
                    {
                        "type": "object",
                        "required": ["bank_content_id", "distance"],
                        "properties": {
                            "bank_content_id": {"type": "integer"},
                            "distance": {"type": "string"},
                        },
                    },
                ]
            },
        }
    },
}
INDEX_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Signal type → index status (HMA's IndexStatusResponse).",
    "additionalProperties": {
        "type": "object",
        "required": ["present", "built_to", "size"],
        "properties": {
            "present": {"type": "boolean"},
            "built_to": {"type": "integer", "description": "Epoch seconds; -1 if none."},
            "size": {"type": "integer"},
        },
    },
}
COMPARE_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Signal type → the two hashes to compare (HMA's CompareRequest).",
    "additionalProperties": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 2,
        "maxItems": 2,
    },
}
COMPARE_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'Signal type → `[match, similarity]`, e.g. `[true, {"distance": 9}]`.',
    "additionalProperties": {"type": "array", "items": {}},
}
SIGNALS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'Signal type → hash value, e.g. `{"pdq": "…64 hex…"}`.',
    "additionalProperties": {"type": "string"},
    "minProperties": 1,
}
ADDED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "signals"],
    "properties": {
        "id": {"type": "integer", "description": "The bank content id (of the first signal)."},
        "signals": SIGNALS_SCHEMA,
        "ids": {
            "type": "object",
            "description": "Safeguard, when several signals were given: each one's content id.",
            "additionalProperties": {"type": "integer"},
        },
    },
}
