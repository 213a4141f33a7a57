"""Meta ThreatExchange (Graph API /threat_updates): the library's exchange, with a client
that times out and a cursor that skips empty pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.fb_threatexchange.api import (
    ThreatExchangeAPI,
    is_valid_app_token,
)
from threatexchange.exchanges.impl.fb_threatexchange_api import (
    FBThreatExchangeCollabConfig,
    FBThreatExchangeIndicatorRecord,
    FBThreatExchangeSignalExchangeAPI,
)
from threatexchange.exchanges.signal_exchange_api import AnySignalExchangeAPI

from moderation.models import Exchange

from ..errors import ExchangeError
from .base import (
    HTTP_TIMEOUT,
    CredentialField,
    ExchangeRecord,
    Programme,
    labels_of,
)

_TX_TYPES = {
    "HASH_PDQ": "pdq",
    "HASH_MD5": "md5",
    "HASH_VIDEO_MD5": "md5",
    "HASH_SHA256": "sha256",
    "HASH_VIDEO_SHA256": "sha256",
}


class _NonEmptyPages:
    """The library's cursor over /threat_updates without empty pages (an empty one trips the
    library's `assert batch`, e.g. when there is nothing new)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def __iter__(self) -> Iterator[list[Any]]:
        for page in self._cursor:
            if page:
                yield page


class _ThreatExchangeClient(ThreatExchangeAPI):
    def get_json_from_url(
        self, url: str, params: Mapping[str, Any] | None = None, *, json_obj_hook: Any = None
    ) -> Any:
        # The library's GET has no timeout (and skips its own retrying session): a source
        # that hangs would hold the worker until its hard time limit.
        response = requests.get(url, params=dict(params or {}), timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json(object_hook=json_obj_hook)

    def get_threat_updates(self, privacy_group: int, **kwargs: Any) -> Any:
        return _NonEmptyPages(super().get_threat_updates(privacy_group, **kwargs))


class ThreatExchange(Programme):
    kind = Exchange.Kind.THREATEXCHANGE
    label = "Meta ThreatExchange"
    credential_fields = (CredentialField("api_token", "App access token (app id|secret)"),)
    checkpoint_cls = FBThreatExchangeSignalExchangeAPI.get_checkpoint_cls()

    def clean_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().clean_options(options)
        try:
            group = int(str(options.get("privacy_group") or "").strip())
        except ValueError:
            group = 0
        if group <= 0:
            raise ExchangeError(
                "ThreatExchange needs the privacy group id to fetch from.", field="privacy_group"
            )
        return {**cleaned, "privacy_group": group}

    def check_credentials(self, credentials: Mapping[str, str]) -> None:
        super().check_credentials(credentials)
        if not is_valid_app_token(credentials["api_token"]):
            raise ExchangeError(
                "That is not a ThreatExchange app access token (app id|secret).",
                field="credentials",
            )

    def default_base_url(self, options: Mapping[str, Any]) -> str:
        return ThreatExchangeAPI._TE_BASE_URL

    def open(
        self, *, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> AnySignalExchangeAPI:
        client = _ThreatExchangeClient(
            credentials["api_token"], endpoint_override=self.base_url(options)
        )
        collab = FBThreatExchangeCollabConfig(
            name="safeguard", privacy_group=int(options["privacy_group"])
        )
        return FBThreatExchangeSignalExchangeAPI(client, collab)

    def _records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        records = []
        for (threat_type, indicator), record in delta.updates.items():
            algorithm = _TX_TYPES.get(threat_type)
            if algorithm is None:
                continue  # URLs, text, other hashes: not for Safeguard's lists
            deleted = record is None or _all_negative(record)
            records.append(
                ExchangeRecord(
                    remote_id=f"{threat_type}:{indicator}",
                    hashes={algorithm: str(indicator).strip().lower()},
                    labels=()
                    if record is None
                    else labels_of({tag for o in record.opinions for tag in o.tags}),
                    deleted=deleted,
                )
            )
        return records


def _all_negative(record: FBThreatExchangeIndicatorRecord) -> bool:
    """Every owner marked it non-malicious (a false positive or test data): not listed."""
    return all(o.category == state.SignalOpinionCategory.NEGATIVE_CLASS for o in record.opinions)
