"""StopNCII (JSON API): the library's StopNCII exchange and client, with deletions seen and
malformed pages refused whole; feedback through its SubmitFeedback call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.stopncii import api as stopncii
from threatexchange.exchanges.collab_config import CollaborationConfigBase
from threatexchange.exchanges.impl.stop_ncii_api import (
    StopNCIICheckpoint,
    StopNCIISignalExchangeAPI,
    StopNCIISignalMetadata,
)
from threatexchange.exchanges.signal_exchange_api import AnySignalExchangeAPI
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

from moderation.models import Exchange

from ..errors import MalformedPage
from .base import (
    SIGNAL_ALGORITHMS,
    CredentialField,
    ExchangeRecord,
    FeedbackItem,
    Programme,
    labels_of,
)

_STOPNCII_TYPES = {
    stopncii.StopNCIISignalType.ImagePDQ: PdqSignal.get_name(),
    stopncii.StopNCIISignalType.VideoMD5: VideoMD5Signal.get_name(),
}
_STOPNCII_FEEDBACK_TYPES = {
    "pdq": stopncii.StopNCIISignalType.ImagePDQ,
    "md5": stopncii.StopNCIISignalType.VideoMD5,
}
_GONE = (stopncii.StopNCIICaseStatus.Withdrawn, stopncii.StopNCIICaseStatus.Deleted)


def check_stopncii_page(page: Any) -> None:
    """Refuse a FetchHashes page whose shape isn't StopNCII's, before the library reads it:
    the library would log and drop the records it can't read and apply the rest."""
    if not isinstance(page, dict):
        raise MalformedPage("StopNCII: the page is not a JSON object.")
    for key, kind in (
        ("count", int),
        ("hasMoreRecords", bool),
        ("nextSetTimestamp", int),
        ("hashRecords", list),
    ):
        if not isinstance(page.get(key), kind):
            raise MalformedPage(f"StopNCII: the page has no valid {key!r}.")
    signal_types = {t.value for t in stopncii.StopNCIISignalType}
    statuses = {s.value for s in stopncii.StopNCIICaseStatus}
    feedback_values = {f.value for f in stopncii.StopNCIICSPFeedbackValue}
    for number, record in enumerate(page["hashRecords"], 1):
        problem = None
        if not isinstance(record, dict):
            problem = "is not an object"
        elif not isinstance(record.get("hashValue"), str):
            problem = "has no hashValue"
        elif not isinstance(record.get("lastModtimestamp"), int):
            problem = "has no lastModtimestamp"
        elif record.get("signalType") not in signal_types:
            problem = f"has an unknown signalType {str(record.get('signalType'))[:40]!r}"
        elif record.get("hashStatus") not in statuses:
            problem = f"has an unknown hashStatus {str(record.get('hashStatus'))[:40]!r}"
        elif not isinstance(record.get("caseNumbers", {}), dict | list):
            problem = "has invalid caseNumbers"
        elif not isinstance(record.get("CSPFeedbacks", []), list) or any(
            not isinstance(f, dict) or f.get("feedbackValue") not in feedback_values
            for f in record.get("CSPFeedbacks", [])
        ):
            problem = "has invalid CSPFeedbacks"
        if problem:
            raise MalformedPage(f"StopNCII: record {number} of the page {problem}.")


class _StopNCIIClient(stopncii.StopNCIIAPI):
    def _get(self, endpoint: stopncii.StopNCIIEndpoint, **params: Any) -> Any:
        page = super()._get(endpoint, **params)
        if endpoint is stopncii.StopNCIIEndpoint.FetchHashes:
            check_stopncii_page(page)
        return page


class _StopNCIIExchange(StopNCIISignalExchangeAPI):
    def fetch_iter(
        self,
        _supported_signal_types: Sequence[type[Any]],
        checkpoint: StopNCIICheckpoint | None,
    ) -> Iterator[state.FetchDelta[Any, Any, Any]]:
        """The library's fetch_iter, with deletions seen: a record whose *status* is
        Withdrawn or Deleted is a deletion (1.2.17 compares the hash value instead)."""
        start = (
            stopncii.StopNCIIAPI.DEFAULT_START_TIME
            if checkpoint is None
            else (checkpoint.update_time)
        )
        for result in self.api.fetch_hashes_iter(start_timestamp=start):
            updates: dict[tuple[str, str], StopNCIISignalMetadata | None] = {}
            for record in result.hashRecords:
                type_name = _STOPNCII_TYPES.get(record.signalType)
                if type_name is None:
                    continue  # URLs and text: not hashes Safeguard lists
                updates[type_name, record.hashValue] = (
                    None
                    if record.hashStatus in _GONE
                    else StopNCIISignalMetadata(record.CSPFeedbacks)
                )
            yield state.FetchDelta(updates, StopNCIICheckpoint.from_stopncii_fetch(result))


class StopNCII(Programme):
    kind = Exchange.Kind.STOPNCII
    label = "StopNCII"
    credential_fields = (
        CredentialField("subscription_key", "Subscription key (Ocp-Apim-Subscription-Key)"),
        CredentialField("fetch_function_key", "FetchHashes function key"),
        CredentialField(
            "feedback_function_key", "SubmitFeedback function key (for feedback)", required=False
        ),
    )
    checkpoint_cls = StopNCIICheckpoint
    accepts_feedback = True

    def default_base_url(self, options: Mapping[str, Any]) -> str:
        return stopncii.StopNCIIAPI.BASE_URL

    def _client(
        self, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> _StopNCIIClient:
        extra = {}
        if credentials.get("feedback_function_key"):
            extra[stopncii.StopNCIIEndpoint.SubmitFeedback] = credentials["feedback_function_key"]
        return _StopNCIIClient(
            credentials["subscription_key"],
            credentials["fetch_function_key"],
            additional_function_keys=extra,
            base_url_override=self.base_url(options),
        )

    def open(
        self, *, options: Mapping[str, Any], credentials: Mapping[str, str]
    ) -> AnySignalExchangeAPI:
        collab = CollaborationConfigBase(name="safeguard", api="stop_ncii", enabled=True)
        return _StopNCIIExchange(collab, self._client(options, credentials))

    def _records(self, delta: state.FetchDelta[Any, Any, Any]) -> list[ExchangeRecord]:
        records = []
        for (type_name, value), metadata in delta.updates.items():
            algorithm = SIGNAL_ALGORITHMS[type_name]
            tags: set[str] = set()
            if metadata is not None:
                for feedback in metadata.feedbacks:
                    tags |= set(feedback.tags)
            records.append(
                ExchangeRecord(
                    remote_id=f"{type_name}:{value}",
                    hashes={algorithm: str(value).strip().lower()},
                    labels=labels_of(tags),
                    deleted=metadata is None,
                )
            )
        return records

    def send_feedback(
        self,
        *,
        options: Mapping[str, Any],
        credentials: Mapping[str, str],
        items: Sequence[FeedbackItem],
    ) -> None:
        """One SubmitFeedback call: a true match is Blocked, a false one NotBlocked."""
        feedbacks = {
            (_STOPNCII_FEEDBACK_TYPES[item.algorithm], item.value): stopncii.StopNCIICSPFeedback(
                stopncii.StopNCIICSPFeedbackValue.Blocked
                if item.true_positive
                else stopncii.StopNCIICSPFeedbackValue.NotBlocked
            )
            for item in items
            if item.algorithm in _STOPNCII_FEEDBACK_TYPES
        }
        if feedbacks:
            self._client(options, credentials).submit_feedbacks(feedbacks)
