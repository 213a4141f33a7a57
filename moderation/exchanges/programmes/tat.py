"""Tech Against Terrorism hash list (JSON API): the library's exchange at a chosen base URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.techagainstterrorism.api import TATHashListAPI
from threatexchange.exchanges.impl.techagainstterrorism_api import TATSignalExchangeAPI
from threatexchange.exchanges.signal_exchange_api import AnySignalExchangeAPI

from moderation.models import Exchange

from .base import (
    SIGNAL_ALGORITHMS,
    CredentialField,
    ExchangeRecord,
    Programme,
)


class _TATClient(TATHashListAPI):
    def __init__(self, username: str, password: str, base_url: str) -> None:
        super().__init__(username, password)
        # The library joins BASE_URL and the endpoint without a separator.
        self.BASE_URL = base_url.rstrip("/") + "/"  # type: ignore[misc]


class _TATExchange(TATSignalExchangeAPI):
    def __init__(self, username: str, password: str, base_url: str) -> None:
        super().__init__(username, password)
        self._safeguard_base_url = base_url

    def get_client(self) -> TATHashListAPI:
        return _TATClient(self.username, self.password, self._safeguard_base_url)


class TechAgainstTerrorism(Programme):
    kind = Exchange.Kind.TAT
    label = "Tech Against Terrorism"
    credential_fields = (
        CredentialField("username", "Username"),
        CredentialField("password", "Password"),
    )
    checkpoint_cls = TATSignalExchangeAPI.get_checkpoint_cls()

    def default_base_url(self, options: Mapping[str, Any]) -> str:
        return TATHashListAPI.BASE_URL

    def open(
        self, *, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> AnySignalExchangeAPI:
        return _TATExchange(
            credentials["username"], credentials["password"], self.base_url(options)
        )

    def _records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        return [
            ExchangeRecord(
                remote_id=f"{type_name}:{value}",
                hashes={SIGNAL_ALGORITHMS[type_name]: str(value).strip().lower()},
                deleted=metadata is None,
            )
            for (type_name, value), metadata in delta.updates.items()
            if type_name in SIGNAL_ALGORITHMS
        ]
