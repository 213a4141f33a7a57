"""The adapter over python-threatexchange (moderation.exchanges.programmes): each programme's
recorded page, served by the fake exchange, read through the library into records."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

from moderation.exchanges.errors import ExchangeError, MalformedPage
from moderation.exchanges.programmes import ExchangeRecord, clean_base_url, programme_for
from moderation.exchanges.programmes.base import SIGNAL_ALGORITHMS

from .conftest import CREDENTIALS, OPTIONS, PATHS
from .fake_exchange import PAYLOADS, FakeExchange


def _records(fake: FakeExchange, kind: str, recorded: str) -> list[ExchangeRecord]:
    fake[PATHS[kind]].recorded = (PAYLOADS / recorded).read_bytes()
    programme = programme_for(kind)
    options = {**OPTIONS[kind], "base_url": fake.url(PATHS[kind])}
    api = programme.open(options=options, credentials=CREDENTIALS[kind])
    records: list[ExchangeRecord] = []
    for delta in programme.fetch_iter(api, None):
        records += programme.records(delta)
    return records


def _hashes(text: str, chars: int) -> list[str]:
    return re.findall(rf"\b[0-9a-f]{{{chars}}}\b", text)


class RecordedPageTests:
    def test_stopncii_hashes_feedback_tags_and_withdrawals(self, fake: FakeExchange) -> None:
        page = json.loads((PAYLOADS / "stopncii_fetch_hashes.json").read_text())
        pdq, md5, withdrawn, _url = (r["hashValue"] for r in page["hashRecords"])
        records = _records(fake, "stopncii", "stopncii_fetch_hashes.json")
        assert records == [
            ExchangeRecord(f"pdq:{pdq}", {"pdq": pdq}, ("ncii",)),
            ExchangeRecord(f"video_md5:{md5}", {"md5": md5}),
            # Withdrawn by status (1.2.17 compares the value, and would keep it listed).
            ExchangeRecord(f"pdq:{withdrawn}", {"pdq": withdrawn}, deleted=True),
        ]

    def test_ncmec_entries_with_fingerprints_classification_and_deletions(
        self, fake: FakeExchange
    ) -> None:
        text = (PAYLOADS / "ncmec_entries.xml").read_text()
        md5, video_md5 = _hashes(text, 32)
        (sha1,) = _hashes(text, 40)
        (pdq,) = _hashes(text, 64)
        records = _records(fake, "ncmec", "ncmec_entries.xml")
        by_id = {r.remote_id: r for r in records}
        assert by_id["42-entry-1"] == ExchangeRecord(
            "42-entry-1", {"md5": md5, "sha1": sha1, "pdq": pdq}, ("A1", "esp:42"), "A1"
        )
        # PhotoDNA only: no hash Safeguard lists.
        assert by_id["43-entry-2"].hashes == {}
        assert by_id["42-entry-3"].deleted
        assert by_id["42-entry-4"] == ExchangeRecord(
            "42-entry-4", {"md5": video_md5}, ("A2", "esp:42"), "A2"
        )

    def test_threatexchange_updates_tags_deletions_and_non_malicious(
        self, fake: FakeExchange
    ) -> None:
        page = json.loads((PAYLOADS / "threatexchange_threat_updates.json").read_text())
        pdq, md5, deleted, _uri, negative = (u["indicator"] for u in page["data"])
        records = _records(fake, "fb_threatexchange", "threatexchange_threat_updates.json")
        assert records == [
            ExchangeRecord(f"HASH_PDQ:{pdq}", {"pdq": pdq}, ("csam", "verified")),
            ExchangeRecord(f"HASH_MD5:{md5}", {"md5": md5}, ("media_type_video",)),
            ExchangeRecord(f"HASH_PDQ:{deleted}", {"pdq": deleted}, deleted=True),
            # Every owner says non-malicious: not listed.
            ExchangeRecord(f"HASH_PDQ:{negative}", {"pdq": negative}, deleted=True),
        ]

    def test_tech_against_terrorism_pdq_video_md5_and_deletions(self, fake: FakeExchange) -> None:
        page = json.loads((PAYLOADS / "tat_hash_list.json").read_text())
        pdq, md5, deleted, _photo_md5 = (e["hash_digest"] for e in page["results"])
        records = _records(fake, "tat", "tat_hash_list.json")
        assert records == [
            ExchangeRecord(f"pdq:{pdq}", {"pdq": pdq}),
            ExchangeRecord(f"video_md5:{md5}", {"md5": md5}),
            ExchangeRecord(f"pdq:{deleted}", {"pdq": deleted}, deleted=True),
        ]
        login = next(r for r in fake.requests if r["path"] == "token-auth/tcap")
        assert b"tat-user" in login["body"]  # the library logs in with the stored credentials


class AdapterTests:
    def test_signal_type_names_match_the_library(self) -> None:
        assert {PdqSignal.get_name(): "pdq", VideoMD5Signal.get_name(): "md5"} == SIGNAL_ALGORITHMS

    def test_a_record_with_an_invalid_hash_refuses_the_page(self) -> None:
        from threatexchange.exchanges.fetch_state import FetchDelta, FetchedSignalMetadata
        from threatexchange.exchanges.impl.techagainstterrorism_api import TATCheckpoint

        delta: FetchDelta[Any, Any, Any] = FetchDelta(
            {("pdq", "f" * 63): FetchedSignalMetadata()}, TATCheckpoint("1,1")
        )
        with pytest.raises(MalformedPage, match="not a 64-character hex pdq hash"):
            programme_for("tat").records(delta)

    def test_checkpoints_are_stored_as_json_and_read_back(self) -> None:
        from threatexchange.exchanges.impl.ncmec_api import NCMECCheckpoint, _NCMECPagingInfo

        ncmec = programme_for("ncmec")
        checkpoint = NCMECCheckpoint(1_700_000_000, _NCMECPagingInfo("/v2/entries?start=5", 17))
        stored = json.loads(json.dumps(ncmec.checkpoint_dump(checkpoint)))
        assert ncmec.checkpoint_load(stored) == checkpoint
        assert ncmec.checkpoint_load({"nonsense": 1}) is None  # unreadable: start over
        stale = programme_for("stopncii").checkpoint_load({"update_time": 5, "last_fetch_time": 10})
        assert stale is None  # the library calls it stale: fetch from the start

    def test_a_base_url_is_https_to_a_public_host(self, settings: Any) -> None:
        assert clean_base_url("https://exttest.example.org/hashsharing/") == (
            "https://exttest.example.org/hashsharing"
        )
        settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = False
        for bad in (
            "http://example.org/",
            "ftp://example.org/",
            "not a url",
            "http://127.0.0.1:6379/",
            "https://10.0.0.5/",
            "https://[::1]/",
            "https://localhost/",
        ):
            with pytest.raises(ExchangeError):
                clean_base_url(bad)
        settings.SAFEGUARD_EXCHANGE_ALLOW_LOCAL_URLS = True  # tests: the local fake
        assert clean_base_url("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
