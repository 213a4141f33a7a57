"""NCMEC hash sharing (XML API): the library's NCMEC exchange, with its fetch-window probing
and paging checkpoints, at a chosen base URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment, NCMECHashAPI
from threatexchange.exchanges.impl.ncmec_api import (
    NCMECCollabConfig,
    NCMECSignalExchangeAPI,
)
from threatexchange.exchanges.signal_exchange_api import AnySignalExchangeAPI

from moderation.models import Exchange

from ..errors import ExchangeError
from .base import (
    CredentialField,
    ExchangeRecord,
    Programme,
    labels_of,
)

# NCMEC's fingerprint element names → Safeguard list algorithms (PhotoDNA etc. have none).
_NCMEC_FINGERPRINTS = {"md5": "md5", "sha1": "sha1", "pdq": "pdq"}


class _NCMECClient(NCMECHashAPI):
    """The library's NCMEC client, at a chosen base URL (it takes one of NCMEC's fixed
    environments; a test environment or a fake server is a URL)."""

    def __init__(
        self, username: str, password: str, environment: NCMECEnvironment, base_url: str
    ) -> None:
        super().__init__(username, password, environment)
        self._base_url = base_url


class _NCMECExchange(NCMECSignalExchangeAPI):
    def __init__(
        self, collab: NCMECCollabConfig, username: str, password: str, base_url: str
    ) -> None:
        super().__init__(collab, username, password)
        self._safeguard_base_url = base_url

    def get_client(self, environment: NCMECEnvironment) -> NCMECHashAPI:
        return _NCMECClient(self._username, self._password, environment, self._safeguard_base_url)


class NCMEC(Programme):
    kind = Exchange.Kind.NCMEC
    label = "NCMEC hash sharing"
    credential_fields = (
        CredentialField("username", "Username"),
        CredentialField("password", "Password"),
    )
    checkpoint_cls = NCMECSignalExchangeAPI.get_checkpoint_cls()
    ENVIRONMENTS = tuple(e.name for e in NCMECEnvironment)

    def clean_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().clean_options(options)
        environment = str(options.get("environment") or "Industry")
        if environment not in self.ENVIRONMENTS:
            raise ExchangeError(
                f"Unknown NCMEC environment {environment!r}; choose one of "
                f"{', '.join(self.ENVIRONMENTS)}.",
                field="environment",
            )
        return {**cleaned, "environment": environment}

    def default_base_url(self, options: Mapping[str, Any]) -> str:
        return NCMECEnvironment[str(options.get("environment") or "Industry")].value

    def open(
        self, *, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> AnySignalExchangeAPI:
        environment = NCMECEnvironment[str(options.get("environment") or "Industry")]
        collab = NCMECCollabConfig(name="safeguard", environment=environment)
        return _NCMECExchange(
            collab, credentials["username"], credentials["password"], self.base_url(options)
        )

    def _records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        records = []
        for key, entry in delta.updates.items():
            hashes = {
                algorithm: value.strip().lower()
                for tag, value in entry.fingerprints.items()
                if (algorithm := _NCMEC_FINGERPRINTS.get(tag.lower()))
            }
            classification = entry.classification or ""
            records.append(
                ExchangeRecord(
                    remote_id=str(key),
                    hashes={} if entry.deleted else hashes,
                    labels=labels_of({classification, f"esp:{entry.member_id}"}),
                    category=classification[:32],
                    deleted=entry.deleted,
                )
            )
        return records
