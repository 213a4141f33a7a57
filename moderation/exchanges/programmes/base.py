"""The shapes every programme shares: the records a fetch applies, the programme interface,
and checkpoints stored as JSON."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlparse

import dacite
from django.conf import settings
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.signal_exchange_api import AnySignalExchangeAPI

from moderation.services.hashlists import hash_value_error

from ..errors import ExchangeError, MalformedPage

# Seconds before an HTTP request to a source gives up (the library's own clients use 60).
HTTP_TIMEOUT = 60
_MAX_REMOTE_ID = 200
_MAX_LABELS = 20
# python-threatexchange signal type names (PdqSignal.get_name(), VideoMD5Signal.get_name()) →
# Safeguard list algorithms. Spelled out: importing the signal types loads faiss.
SIGNAL_ALGORITHMS = {"pdq": "pdq", "video_md5": "md5"}


@dataclass(frozen=True)
class ExchangeRecord:
    """One update from a source: its id there, its hashes by Safeguard algorithm, its labels
    (tags, classification) and category; or a deletion of that id."""

    remote_id: str
    hashes: Mapping[str, str]
    labels: tuple[str, ...] = ()
    category: str = ""
    deleted: bool = False


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    required: bool = True


@dataclass(frozen=True)
class FeedbackItem:
    """A verdict to send: the list hash (Safeguard algorithm and value) and whether it was a
    true match."""

    algorithm: str
    value: str
    true_positive: bool


class Programme:
    """How Safeguard talks to one programme through the library."""

    kind: ClassVar[str]
    label: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    checkpoint_cls: ClassVar[type[state.FetchCheckpointBase]]
    accepts_feedback: ClassVar[bool] = False

    # --- configuration --------------------------------------------------------------------

    def default_base_url(self, options: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def clean_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The programme's non-secret options, checked; raises ExchangeError."""
        cleaned: dict[str, Any] = {}
        base_url = str(options.get("base_url") or "").strip()
        if base_url:
            cleaned["base_url"] = clean_base_url(base_url)
        return cleaned

    def check_credentials(self, credentials: Mapping[str, str]) -> None:
        missing = [
            f.label for f in self.credential_fields if f.required and not credentials.get(f.name)
        ]
        if missing:
            raise ExchangeError(f"{self.label} needs: {', '.join(missing)}.", field="credentials")

    def base_url(self, options: Mapping[str, Any]) -> str:
        return str(options.get("base_url") or self.default_base_url(options)).rstrip("/")

    # --- fetching ------------------------------------------------------------------------

    def open(
        self, *, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> AnySignalExchangeAPI:
        """The library's SignalExchangeAPI for this exchange, authenticated."""
        raise NotImplementedError

    def fetch_iter(
        self, api: AnySignalExchangeAPI, checkpoint: state.FetchCheckpointBase | None
    ) -> Iterator[state.FetchDelta[Any, Any, Any]]:
        """The library's pages after the checkpoint (None: from the start)."""
        from threatexchange.signal_type.md5 import VideoMD5Signal
        from threatexchange.signal_type.pdq.signal import PdqSignal

        return api.fetch_iter([PdqSignal, VideoMD5Signal], checkpoint)

    def records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        """The delta's updates as records, checked: a record with an invalid hash, or one the
        programme's shape doesn't allow, refuses the whole page (MalformedPage)."""
        records = self._records(delta)
        for record in records:
            if len(record.remote_id) > _MAX_REMOTE_ID:
                raise MalformedPage(f"{self.label}: a record id longer than {_MAX_REMOTE_ID}.")
            for algorithm, value in record.hashes.items():
                if error := hash_value_error(value, algorithm):
                    raise MalformedPage(
                        f"{self.label}: record {record.remote_id[:80]!r} has {error}."
                    )
        return records

    def _records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        raise NotImplementedError

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoint_load(self, data: Mapping[str, Any] | None) -> state.FetchCheckpointBase | None:
        """The stored checkpoint, or None to fetch from the start: none stored yet, or one
        the library calls stale (the source no longer keeps the deletions since)."""
        if not data:
            return None
        try:
            checkpoint = dacite.from_dict(self.checkpoint_cls, dict(data))
        except (dacite.DaciteError, TypeError, ValueError):
            return None  # unreadable (a library upgrade changed it): start over, idempotently
        return None if checkpoint.is_stale() else checkpoint

    @staticmethod
    def checkpoint_dump(checkpoint: state.FetchCheckpointBase) -> dict[str, Any]:
        return dataclasses.asdict(checkpoint)

    @staticmethod
    def checkpoint_time(checkpoint: state.FetchCheckpointBase) -> datetime | None:
        """The source time the checkpoint has reached, if the library can say."""
        stamp = checkpoint.get_progress_timestamp()
        return datetime.fromtimestamp(stamp, tz=UTC) if stamp else None

    # --- feedback ------------------------------------------------------------------------

    def send_feedback(
        self,
        *,
        options: Mapping[str, Any],
        credentials: Mapping[str, str],
        items: Sequence[FeedbackItem],
    ) -> None:
        raise NotImplementedError


def clean_base_url(url: str) -> str:
    """A base URL override (a programme's test environment): https, to a public host.
    Credentials are sent there, so never in clear and never to this machine or its network
    (an admin's typo or a forged form must not hand them to a local service) — unless
    SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS is set, for a local fake exchange in tests."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ExchangeError("The base URL must be an https URL.", field="base_url")
    local = _is_local(parsed.hostname)
    if local and not settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS:
        raise ExchangeError(
            "The base URL must not point at this machine or its local network.",
            field="base_url",
        )
    if parsed.scheme == "http" and not local:
        raise ExchangeError("The base URL must use https.", field="base_url")
    return url.rstrip("/")


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def labels_of(values: Sequence[str] | set[str]) -> tuple[str, ...]:
    return tuple(sorted({str(v)[:64] for v in values if v}))[:_MAX_LABELS]
