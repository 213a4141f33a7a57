"""The API's JSON parser, with a nesting limit.

Its own module, imported by REST_FRAMEWORK's settings: it must not import rest_framework.views
(whose class attributes read those settings while this module would still be loading).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative (a recursive check would itself overflow on the input it guards against)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


class BoundedJSONParser(JSONParser):
    """JSON bodies nested deeper than MAX_JSON_DEPTH are a 400, never a RecursionError (500)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused."
            ) from None
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused."
            )
        return data


def loads_bounded(text: str | bytes) -> Any:
    """json.loads for JSON carried inside a form field (e.g. multipart `subject`): the same
    depth limit; raises ValueError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise ValueError("nested too deeply")
    return data
