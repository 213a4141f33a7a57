"""The HMA routes: Meta's Hasher-Matcher-Actioner (OpenMediaMatch) API, spoken by Safeguard.

Routes, parameters, shapes and status codes follow facebook/ThreatExchange,
hasher-matcher-actioner/src/OpenMediaMatch/blueprints/{hashing,matching,curation}.py and
schemas/. Differences, each for a reason:

- Every route needs a token or a console session (hma.permissions); HMA leaves that to a proxy.
- Errors are Safeguard's ``{"error": {"code", "message"}}`` with HMA's status codes, plus HMA's
  top-level ``message``.
- No fetching by ``url`` (GET /h/hash, GET /m/lookup?url=): an SSRF risk; upload the file.
- Matches carry Safeguard's provenance as extra fields; quarantined entries are not reported
  as matches; ``notes=true`` adds ``safeguard_notes``.
- A bank content is one signal (a list entry): adding several signals at once gives each its
  own id (``ids``).

One APIView per path (the methods of a path share it), thin: each checks its input, calls one
service or read, and shapes the answer. The two GET lookups, called with a token, are usually
answered by their lean path (hma.fastpath) with these views' functions; every refusal is still
these views'.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import exception_handler
from moderation.media.validation import MediaRejected

from . import serializers as s
from .errors import (
    BankNotFound,
    ContentNotFound,
    HmaError,
    ManagedInConsole,
    UnknownContentType,
    UrlFetchDisabled,
)
from .hashing import upload_hash
from .lookup import Match, coinflip, index_status, signal_lookup, signals_compare
from .permissions import CanCurate, CanMatch
from .selectors import BankView, bank_entry, bank_find, banks_all, entry_signal
from .services import (
    bank_content_remove,
    bank_create,
    bank_delete,
    bank_ratio,
    bank_signals_add,
    bank_update,
)
from .signal_types import (
    CONTENT_TYPES,
    SIGNAL_TYPES,
    SignalType,
    signal_type_get,
    signal_types_for,
)

_ERROR = {"$ref": "#/components/schemas/Error"}
# Multipart framing around the file (boundaries, headers): allowed beyond the file limit.
_MULTIPART_SLACK = 64 * 1024


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=_ERROR, description=description)


def hma_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The one handler's answer (core.api), with HMA's top-level ``message`` beside it:
    HMA clients read ``message`` (OpenMediaMatch/schemas/shared.py, ErrorResponse)."""
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        error = response.data.get("error")
        if isinstance(error, dict) and "message" in error:
            response.data["message"] = error["message"]
    return response


class HmaApi(APIView):
    """Base of the HMA views."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        # Outside /api/, the console's login middleware would send an anonymous request to
        # the login page, and a token request is anonymous until DRF authenticates it: these
        # views leave authentication to DRF (401 without credentials, deny by default).
        return login_not_required(super().as_view(**initkwargs))

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return hma_exception_handler


@functools.cache
def _query_serializer(serializer_class: type[Any]) -> Any:
    # One instance per class validates every request's query: DRF deep-copies a serializer's
    # declared fields each time one is made, which cost a raw lookup as much as checking its
    # matches (benchmarks/HMA.md); validating holds no per-request state on the instance.
    return serializer_class()


def _query(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    """The checked query parameters; a ValidationError (400 with ``fields``) otherwise."""
    return _query_serializer(serializer_class).run_validation(request.query_params)


# --- The GET lookups, shared with their fast path (hma.fastpath) ----------------------------
# Each in two steps: the checked query and signal (every refusal of the input is raised
# here, before the caller spends its rate limit), then the answer.


def raw_lookup_query(params: Any) -> dict[str, Any]:
    return _query_serializer(s.RawLookupQuerySerializer).run_validation(params)


def lookup_query(params: Any) -> dict[str, Any]:
    query = _query_serializer(s.LookupQuerySerializer).run_validation(params)
    if query.get("url"):
        raise UrlFetchDisabled(
            "Lookups by url are not offered: fetching URLs from the server is an SSRF risk. "
            "POST the file to /m/lookup instead."
        )
    if not query.get("signal") or not query.get("signal_type"):
        raise HmaError("Either url or both signal and signal_type are required")
    return query


def lookup_signal(query: dict[str, Any]) -> tuple[SignalType, str]:
    """The query's signal type and its normalised value (UnknownSignalType, InvalidSignal)."""
    signal_type = signal_type_get(query["signal_type"])
    return signal_type, signal_type.validate(query["signal"])


def raw_lookup_answer(query: dict[str, Any], signal_type: SignalType, value: str) -> Any:
    """GET /m/raw_lookup's body: ``{"matches": [id…]}`` or ``[{bank_content_id, distance}]``."""
    result = signal_lookup(
        signal_type=signal_type,
        value=value,
        banks=_banks(query.get("banks")),
        quality=query.get("quality"),
    )
    if query["include_distance"]:
        found: list[Any] = [
            {"bank_content_id": m.bank_content_id, "distance": m.distance} for m in result.matches
        ]
    else:
        found = [m.bank_content_id for m in result.matches]
    return {"matches": found}


def lookup_answer(query: dict[str, Any], signal_type: SignalType, value: str) -> Any:
    """GET /m/lookup's body: ``{bank: [{bank_content_id, distance, …}]}``."""
    result = signal_lookup(
        signal_type=signal_type,
        value=value,
        banks=_banks(query.get("banks")),
        quality=query.get("quality"),
    )
    body = _by_bank(result.matches, coinflip(query.get("seed"), bypass=query["bypass_coinflip"]))
    if query["notes"]:
        body["safeguard_notes"] = result.notes
    return body


def _banks(raw: str | None) -> set[str] | None:
    """HMA's ``banks``: a comma-separated filter, or None for every bank."""
    return {name.strip() for name in raw.split(",")} if raw else None


def _upload(request: Request) -> tuple[str, Any]:
    """The one uploaded file and its content type (its field name), as HMA's
    ``hash_media_from_form_data``; an oversized body is refused before it is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.HMA_MAX_UPLOAD_BYTES
    if length > limit + _MULTIPART_SLACK:
        raise MediaRejected(
            "too_large", f"The upload is {length:,} bytes; the limit is {limit:,} bytes."
        )
    files = request.FILES
    if not files:
        raise HmaError("Missing multipart/form-data file upload")
    if len(files) > 1 or any(len(files.getlist(key)) > 1 for key in files):
        raise HmaError("Only one file allowed per request")
    content_type = next(iter(files))
    if content_type not in CONTENT_TYPES:
        raise UnknownContentType(f"no such content_type: '{content_type}'")
    return content_type, files[content_type]


def _signal_types(content_type: str, types: str | None) -> list[SignalType]:
    chosen = signal_types_for(content_type, types)
    if not chosen:
        raise UnknownContentType(f"content_type {content_type} is disabled")
    return chosen


def _match_body(match: Match) -> dict[str, Any]:
    hash_list, candidate = match.hash_list, match.candidate
    body: dict[str, Any] = {
        "bank_content_id": match.bank_content_id,
        "distance": match.distance,
        "category": match.category,
        "provider": hash_list.provider,
        "algorithm": candidate.algorithm,
    }
    if candidate.transform:
        body["transform"] = candidate.transform
    if candidate.query_percent is not None:
        body["query_percent"] = candidate.query_percent
        body["listed_percent"] = candidate.listed_percent
    body["provenance"] = {
        "list": hash_list.name,
        "list_version": hash_list.version,
        "verified": hash_list.verified,
        "added_at": match.added_at.isoformat() if match.added_at else None,
    }
    return body


def _by_bank(matches: list[Match], flip: float) -> dict[str, Any]:
    """HMA's ``{bank: [{bank_content_id, distance}]}``, banks kept by the coin flip."""
    body: dict[str, list[dict[str, Any]]] = {}
    for match in matches:
        if match.matching_enabled_ratio >= flip:
            body.setdefault(match.bank, []).append(_match_body(match))
    return body


@login_not_required
def not_found(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    """Any other path under /h, /m or /c (an id that is not a number, an empty bank name):
    the API's JSON 404 rather than the console's page."""
    message = "Not found."
    return JsonResponse(
        {"error": {"code": "not_found", "message": message}, "message": message}, status=404
    )


# --- /h -------------------------------------------------------------------------------------


class HashApi(HmaApi):
    """POST /h/hash: the signals of an uploaded photo or video."""

    permission_classes = [CanMatch]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="hma_hash",
        tags=["HMA hashing"],
        parameters=[s.HashQuerySerializer],
        request={"multipart/form-data": s.UploadSerializer},
        responses={
            200: OpenApiResponse(response=s.SIGNALS_SCHEMA, description="Signal type → hash"),
            413: _error("Upload larger than HMA_MAX_UPLOAD_BYTES"),
        },
    )
    def post(self, request: Request) -> Response:
        query = _query(s.HashQuerySerializer, request)
        content_type, upload = _upload(request)
        hashes = upload_hash(
            content_type=content_type,
            upload=upload,
            signal_types=_signal_types(content_type, query.get("types")),
        )
        return Response(hashes.signals)


# --- /m -------------------------------------------------------------------------------------


class RawLookupApi(HmaApi):
    """GET /m/raw_lookup: the bank content ids that match one hash."""

    permission_classes = [CanMatch]

    @extend_schema(
        operation_id="hma_raw_lookup",
        tags=["HMA matching"],
        parameters=[s.RawLookupQuerySerializer],
        responses={
            200: OpenApiResponse(response=s.RAW_LOOKUP_SCHEMA),
            400: _error("Unknown signal type or malformed hash"),
        },
    )
    def get(self, request: Request) -> Response:
        query = raw_lookup_query(request.query_params)
        return Response(raw_lookup_answer(query, *lookup_signal(query)))


class LookupApi(HmaApi):
    """/m/lookup: matches by bank, of a hash (GET) or of an uploaded file (POST)."""

    permission_classes = [CanMatch]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="hma_lookup",
        tags=["HMA matching"],
        parameters=[s.LookupQuerySerializer],
        responses={
            200: OpenApiResponse(response=s.BANK_MATCHES_SCHEMA),
            400: _error("Unknown signal type, malformed hash, missing parameters, or url"),
        },
    )
    def get(self, request: Request) -> Response:
        query = lookup_query(request.query_params)
        return Response(lookup_answer(query, *lookup_signal(query)))

    @extend_schema(
        operation_id="hma_lookup_upload",
        tags=["HMA matching"],
        parameters=[s.LookupUploadQuerySerializer],
        request={"multipart/form-data": s.UploadSerializer},
        responses={
            200: OpenApiResponse(response=s.SIGNAL_BANK_MATCHES_SCHEMA),
            413: _error("Upload larger than HMA_MAX_UPLOAD_BYTES"),
        },
    )
    def post(self, request: Request) -> Response:
        query = _query(s.LookupUploadQuerySerializer, request)
        content_type, upload = _upload(request)
        hashes = upload_hash(
            content_type=content_type,
            upload=upload,
            signal_types=_signal_types(content_type, query.get("types")),
        )
        flip = coinflip(query.get("seed"), bypass=query["bypass_coinflip"])
        banks = _banks(query.get("banks"))
        body: dict[str, Any] = {}
        notes: list[dict[str, Any]] = []
        for name, value in hashes.signals.items():
            result = signal_lookup(
                signal_type=SIGNAL_TYPES[name],
                value=value,
                banks=banks,
                quality=hashes.pdq_quality if name == "pdq" else None,
                dihedral=hashes.pdq_dihedral if name == "pdq" else (),
                frames=hashes.frames if name == "vpdq" else (),
            )
            body[name] = _by_bank(result.matches, flip)
            notes += result.notes
        if query["notes"]:
            body["safeguard_notes"] = notes
        return Response(body)


class IndexStatusApi(HmaApi):
    """GET /m/index/status: per signal type, whether its lists' indexes are present."""

    permission_classes = [CanMatch]

    @extend_schema(
        operation_id="hma_index_status",
        tags=["HMA matching"],
        parameters=[s.IndexStatusQuerySerializer],
        responses={
            200: OpenApiResponse(response=s.INDEX_STATUS_SCHEMA),
            400: _error("Unknown signal type"),
        },
    )
    def get(self, request: Request) -> Response:
        query = _query(s.IndexStatusQuerySerializer, request)
        return Response(index_status(query.get("signal_type")))


class CompareApi(HmaApi):
    """POST /m/compare: the distance between the two hashes given per signal type."""

    permission_classes = [CanMatch]

    @extend_schema(
        operation_id="hma_compare",
        tags=["HMA matching"],
        request={"application/json": s.COMPARE_REQUEST_SCHEMA},
        responses={200: OpenApiResponse(response=s.COMPARE_RESPONSE_SCHEMA)},
    )
    def post(self, request: Request) -> Response:
        return Response(signals_compare(request.data))


# --- /c -------------------------------------------------------------------------------------


def _bank_body(view: BankView) -> dict[str, Any]:
    return s.BankSerializer(
        {"name": view.name, "matching_enabled_ratio": view.matching_enabled_ratio}
    ).data


def _bank_or_404(name: str) -> BankView:
    view = bank_find(name)
    if view is None:
        raise BankNotFound(f"bank '{name}' not found")
    return view


def _added_body(added: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """HMA's ``{"id", "signals"}``; with several signals, Safeguard's ``ids`` of each."""
    entries = list(added.values())
    body: dict[str, Any] = {
        "id": entries[0][0].pk,
        "signals": {name: value for name, (_, value) in added.items()},
    }
    if len(added) > 1:
        body["ids"] = {name: entry.pk for name, (entry, _) in added.items()}
    return body


class BankListCreateApi(HmaApi):
    """/c/banks: every bank (GET), or a new one (POST)."""

    permission_classes = [CanCurate]

    @extend_schema(
        operation_id="hma_banks_list",
        tags=["HMA curation"],
        responses={200: s.BankSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response([_bank_body(view) for view in banks_all()])

    @extend_schema(
        operation_id="hma_banks_create",
        tags=["HMA curation"],
        request=s.BankCreateSerializer,
        responses={201: s.BankSerializer, 403: _error("Bank already exists, or not allowed")},
    )
    def post(self, request: Request) -> Response:
        serializer = s.BankCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        bank = bank_create(
            name=data["name"],
            matching_enabled_ratio=bank_ratio(
                enabled_ratio=data.get("enabled_ratio"), enabled=data.get("enabled"), default=1.0
            ),
            actor=request.user,
            created_by=request.user,
        )
        return Response(
            s.BankSerializer(bank).data,
            status=201,
        )


class BankDetailApi(HmaApi):
    """/c/bank/<name>: a bank (GET), renamed or re-enabled (PUT), deleted (DELETE)."""

    permission_classes = [CanCurate]

    @extend_schema(
        operation_id="hma_bank_retrieve", tags=["HMA curation"], responses=s.BankSerializer
    )
    def get(self, request: Request, bank_name: str) -> Response:
        return Response(_bank_body(_bank_or_404(bank_name)))

    @extend_schema(
        operation_id="hma_bank_update",
        tags=["HMA curation"],
        request=s.BankUpdateSerializer,
        responses={200: s.BankSerializer, 403: _error("Name taken, list managed in the console")},
    )
    def put(self, request: Request, bank_name: str) -> Response:
        serializer = s.BankUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        bank = bank_update(
            name=bank_name,
            actor=request.user,
            new_name=data.get("name"),
            matching_enabled_ratio=bank_ratio(
                enabled_ratio=data.get("enabled_ratio"), enabled=data.get("enabled"), default=None
            ),
        )
        return Response(s.BankSerializer(bank).data)

    @extend_schema(
        operation_id="hma_bank_delete",
        tags=["HMA curation"],
        responses={200: s.MessageSerializer, 403: _error("A list managed in the console")},
    )
    def delete(self, request: Request, bank_name: str) -> Response:
        bank_delete(name=bank_name, actor=request.user)
        return Response({"message": "Done"})


class BankSignalApi(HmaApi):
    """POST /c/bank/<name>/signal: add hashes to a bank."""

    permission_classes = [CanCurate]

    @extend_schema(
        operation_id="hma_bank_signal_add",
        tags=["HMA curation"],
        request={"application/json": s.SIGNALS_REQUEST_SCHEMA},
        responses={200: OpenApiResponse(response=s.ADDED_SCHEMA)},
    )
    def post(self, request: Request, bank_name: str) -> Response:
        added = bank_signals_add(name=bank_name, signals=request.data, actor=request.user)
        return Response(_added_body(added))


class BankContentAddApi(HmaApi):
    """POST /c/bank/<name>/content: hash an uploaded file and add its signals to a bank."""

    permission_classes = [CanCurate]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="hma_bank_content_add",
        tags=["HMA curation"],
        parameters=[s.HashQuerySerializer],
        request={"multipart/form-data": s.UploadSerializer},
        responses={
            200: OpenApiResponse(response=s.ADDED_SCHEMA),
            413: _error("Upload larger than HMA_MAX_UPLOAD_BYTES"),
        },
    )
    def post(self, request: Request, bank_name: str) -> Response:
        query = _query(s.HashQuerySerializer, request)
        if _bank_or_404(bank_name).bank is None:  # checked before the costly hashing
            raise ManagedInConsole(f"'{bank_name}' is managed in the console (read-only here).")
        content_type, upload = _upload(request)
        hashes = upload_hash(
            content_type=content_type,
            upload=upload,
            signal_types=_signal_types(content_type, query.get("types")),
        )
        added = bank_signals_add(name=bank_name, signals=hashes.signals, actor=request.user)
        return Response(_added_body(added))


class BankContentApi(HmaApi):
    """/c/bank/<name>/content/<id>: one content of a bank (GET), withdrawn (DELETE)."""

    permission_classes = [CanCurate]

    @extend_schema(
        operation_id="hma_bank_content_retrieve",
        tags=["HMA curation"],
        parameters=[s.BankContentQuerySerializer],
        responses={200: s.BankContentSerializer, 400: _error("Unknown signal type")},
    )
    def get(self, request: Request, bank_name: str, content_id: int) -> Response:
        query = _query(s.BankContentQuerySerializer, request)
        view = _bank_or_404(bank_name)
        entry = bank_entry(view, content_id)
        if entry is None:
            raise ContentNotFound(f"content '{content_id}' not found")
        name, value = entry_signal(entry)
        signals: dict[str, str] | None = {name: value} if query["include_signals"] else None
        if query.get("signal_type"):
            wanted = signal_type_get(query["signal_type"])
            same = wanted.algorithm == entry.hash_list.algorithm
            signals = {wanted.name: value} if same else {}
        body = {
            "id": entry.pk,
            "disable_until_ts": 0 if entry.quarantined_at else 1,
            "collab_metadata": {},
            "original_media_uri": None,
            "bank": {"name": view.name, "matching_enabled_ratio": view.matching_enabled_ratio},
            "list": entry.hash_list.name,
            "provider": entry.hash_list.provider,
            "category": entry.category,
            "quarantined": entry.quarantined_at is not None,
            "low_quality": entry.low_quality,
            "added_at": entry.created_at,
        }
        if signals is not None:
            body["signals"] = signals
        return Response(s.BankContentSerializer(body).data)

    @extend_schema(
        operation_id="hma_bank_content_delete",
        tags=["HMA curation"],
        responses={200: s.DeletedSerializer, 403: _error("A list managed in the console")},
    )
    def delete(self, request: Request, bank_name: str, content_id: int) -> Response:
        removed = bank_content_remove(name=bank_name, content_id=content_id, actor=request.user)
        return Response({"deleted": removed})
