"""OpenAPI post-processing: document the error responses every operation can give.

drf-spectacular documents the success responses each view declares; the refusals that come
from authentication, permissions, parsing and throttling apply to every operation, so they are
added here once, all with the one error shape of `core.api.exception_handler`.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
_DESCRIPTIONS = {
    "400": "Invalid request; `fields` names each problem",
    "401": "Missing, invalid or revoked token",
    "403": "Authenticated, but not allowed (role, scope or second factor)",
    "404": "No such object, or not visible to the caller",
    "415": "Unsupported Content-Type",
    "429": "Rate limit exceeded; see Retry-After",
    "503": "A dependency is briefly unavailable; nothing was stored; retry",
}


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["401", "403", "429", "503"]
            if "{" in path:
                codes.append("404")
            if "requestBody" in operation or method in ("post", "put", "patch"):
                codes += ["400", "415"]
            responses = operation["responses"]
            for code in codes:
                existing = responses.get(code)
                if existing is None:
                    responses[code] = {"description": _DESCRIPTIONS[code], "content": ref}
                elif "content" not in existing:
                    existing["content"] = ref
    return result
