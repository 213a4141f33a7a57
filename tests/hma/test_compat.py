"""The compatibility suite: an HMA client's requests, and the responses HMA's own schemas and
tests expect, run against Safeguard.

Rewritten from facebook/ThreatExchange, hasher-matcher-actioner/src/OpenMediaMatch/tests/
(test_api_banks.py, test_match_api.py, test_api.py, test_e2e_workflow.py, test_hashing.py) and
schemas/ (curation.py, matching.py, shared.py). Differences from HMA's tests, each deliberate:

- Every request carries a token (HMA leaves authentication to a proxy): curation with an
  admin's console token, hashing and matching with a platform token.
- Signals are synthetic (seeded random hashes, generated images), not HMA's sample hashes of
  photos, and content is added with /signal or an upload: there is no fetching by URL.
- Indexes need no manual build: a lookup (or /m/index/status) builds a list's index for its
  current version.
- ``distance`` is a string, as HMA's ``MatchWithDistance`` schema says (HMA's older e2e test
  compared it with an int), and matches carry Safeguard's extra fields, which HMA's
  ``LookupResponse`` allows; the HMA fields are checked exactly.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.hma.factories import add_signals, create_bank, flip, jpeg, md5, pdq, upload, vpdq

HMA_MATCH_FIELDS = {"bank_content_id", "distance"}


def _hma_part(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: match[key] for key in HMA_MATCH_FIELDS} for match in matches]


@pytest.mark.django_db
class BankCurationCompatTests:
    """test_api_banks.py"""

    def test_a_fresh_installation_has_no_banks(self, admin_client: APIClient) -> None:
        response = admin_client.get("/c/banks")
        assert response.status_code == 200
        assert response.json() == []

    def test_bank_names_are_upper_with_underscore_and_a_new_bank_is_listed(
        self, admin_client: APIClient
    ) -> None:
        for bad in ("01_TEST_BANK", "my_test_bank"):
            response = admin_client.post("/c/banks", {"name": bad}, format="json")
            assert response.status_code == 400
            assert "message" in response.json()  # HMA's ErrorResponse
        created = admin_client.post("/c/banks", {"name": "MY_TEST_BANK_01"}, format="json")
        assert created.status_code == 201
        assert created.json() == {"matching_enabled_ratio": 1.0, "name": "MY_TEST_BANK_01"}
        assert admin_client.get("/c/banks").json() == [created.json()]

    def test_a_taken_name_is_refused_with_403(self, admin_client: APIClient) -> None:
        create_bank(admin_client, "TAKEN")
        response = admin_client.post("/c/banks", {"name": "TAKEN"}, format="json")
        assert response.status_code == 403

    def test_a_bank_is_renamed_disabled_and_given_a_ratio(self, admin_client: APIClient) -> None:
        create_bank(admin_client, "MY_TEST_BANK")
        bad = admin_client.put("/c/bank/MY_TEST_BANK", {"name": "1_invalid_name"}, format="json")
        assert bad.status_code == 400
        renamed = admin_client.put(
            "/c/bank/MY_TEST_BANK", {"name": "MY_TEST_BANK_RENAMED"}, format="json"
        )
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "MY_TEST_BANK_RENAMED"
        disabled = admin_client.put(
            "/c/bank/MY_TEST_BANK_RENAMED", {"enabled": False}, format="json"
        )
        assert disabled.status_code == 200
        assert disabled.json()["matching_enabled_ratio"] == 0
        half = admin_client.put(
            "/c/bank/MY_TEST_BANK_RENAMED", {"enabled_ratio": 0.5}, format="json"
        )
        assert half.status_code == 200
        assert half.json()["matching_enabled_ratio"] == 0.5
        assert admin_client.get("/c/banks").json() == [
            {"name": "MY_TEST_BANK_RENAMED", "matching_enabled_ratio": 0.5}
        ]

    def test_a_bank_can_be_read_by_name(self, admin_client: APIClient) -> None:
        create_bank(admin_client, "READ_ME", enabled_ratio=0.25)
        response = admin_client.get("/c/bank/READ_ME")
        assert response.status_code == 200
        assert response.json() == {"name": "READ_ME", "matching_enabled_ratio": 0.25}
        assert admin_client.get("/c/bank/NO_SUCH_BANK").status_code == 404

    def test_deleting_a_bank_succeeds_and_deleting_it_again_too(
        self, admin_client: APIClient
    ) -> None:
        create_bank(admin_client, "MY_TEST_BANK")
        first = admin_client.delete("/c/bank/MY_TEST_BANK")
        assert first.status_code == 200
        assert first.json() == {"message": "Done"}  # HMA's SuccessResponse
        assert admin_client.delete("/c/bank/MY_TEST_BANK").status_code == 200
        assert admin_client.get("/c/banks").json() == []

    def test_content_added_as_a_signal_can_be_read_back_by_id(
        self, admin_client: APIClient
    ) -> None:
        create_bank(admin_client, "TEST_BANK_GET")
        value = pdq(1)
        added = add_signals(admin_client, "TEST_BANK_GET", {"pdq": value})
        assert added == {"id": added["id"], "signals": {"pdq": value}}
        response = admin_client.get(f"/c/bank/TEST_BANK_GET/content/{added['id']}")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == added["id"]
        # HMA's BankContentResponse.
        assert body["disable_until_ts"] == 1  # BankContentConfig.ENABLED
        assert body["collab_metadata"] == {} and body["original_media_uri"] is None
        assert body["bank"] == {"name": "TEST_BANK_GET", "matching_enabled_ratio": 1.0}
        assert "signals" not in body
        with_signals = admin_client.get(
            f"/c/bank/TEST_BANK_GET/content/{added['id']}?include_signals=true"
        )
        assert with_signals.json()["signals"] == {"pdq": value}

    def test_content_of_a_missing_bank_or_a_missing_id_is_404(
        self, admin_client: APIClient
    ) -> None:
        assert admin_client.get("/c/bank/TEST_BANK_GET/content/1").status_code == 404
        create_bank(admin_client, "TEST_BANK_GET")
        assert admin_client.get("/c/bank/TEST_BANK_GET/content/1").status_code == 404

    def test_deleting_content_reports_how_many_were_deleted(self, admin_client: APIClient) -> None:
        create_bank(admin_client, "NEW_BANK")
        added = add_signals(admin_client, "NEW_BANK", {"pdq": pdq(2)})
        response = admin_client.delete(f"/c/bank/NEW_BANK/content/{added['id']}")
        assert response.status_code == 200
        assert response.json() == {"deleted": 1}
        assert admin_client.delete(f"/c/bank/NEW_BANK/content/{added['id']}").json() == {
            "deleted": 0
        }

    def test_content_signals_can_be_asked_for_by_signal_type(self, admin_client: APIClient) -> None:
        create_bank(admin_client, "TEST_BANK")
        response = admin_client.post("/c/bank/TEST_BANK/signal", {"pdq": "0" * 64}, format="json")
        assert response.status_code == 200
        content_id = response.json()["id"]
        other = admin_client.get(f"/c/bank/TEST_BANK/content/{content_id}?signal_type=video_md5")
        assert other.status_code == 200
        assert other.json()["signals"] == {}
        same = admin_client.get(f"/c/bank/TEST_BANK/content/{content_id}?signal_type=pdq")
        assert same.status_code == 200
        assert same.json()["signals"] == {"pdq": "0" * 64}
        bad = admin_client.get(f"/c/bank/TEST_BANK/content/{content_id}?signal_type=invalid")
        assert bad.status_code == 400
        assert "No such signal type" in bad.json()["message"]

    def test_hashes_added_to_two_banks_are_found_by_raw_lookup(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        first, second = pdq(3), pdq(4)
        create_bank(admin_client, "NEW_BANK")
        create_bank(admin_client, "NEW_BANK_2")
        one = add_signals(admin_client, "NEW_BANK", {"pdq": first})["id"]
        two = add_signals(admin_client, "NEW_BANK_2", {"pdq": second})["id"]
        for value, expected in ((first, one), (second, two)):
            response = platform_client.get(f"/m/raw_lookup?signal_type=pdq&signal={value}")
            assert response.status_code == 200
            assert response.json() == {"matches": [expected]}


@pytest.fixture
def three_banks(admin_client: APIClient) -> dict[str, int]:
    """test_match_api.py's client_with_multi_bank_data: one PDQ hash in BANK_A, B and C."""
    ids = {}
    for name in ("BANK_A", "BANK_B", "BANK_C"):
        create_bank(admin_client, name)
        ids[name] = add_signals(admin_client, name, {"pdq": pdq(10)})["id"]
    return ids


@pytest.mark.django_db
class MatchingCompatTests:
    """test_match_api.py, test_e2e_workflow.py"""

    @pytest.mark.parametrize(
        ("signal_type", "value"),
        [
            ("pdq", pdq(20)),
            ("video_md5", md5(20)),
            ("vpdq", vpdq([(pdq(21), 100, 0.0), (pdq(22), 100, 1.0), (pdq(23), 100, 2.0)])),
        ],
    )
    def test_each_hma_signal_type_can_be_looked_up_raw_and_by_bank(
        self,
        signal_type: str,
        value: str,
        admin_client: APIClient,
        platform_client: APIClient,
    ) -> None:
        create_bank(admin_client, "SAMPLE")
        content_id = add_signals(admin_client, "SAMPLE", {signal_type: value})["id"]
        query = {"signal": value, "signal_type": signal_type}
        raw = platform_client.get("/m/raw_lookup", query)
        assert raw.status_code == 200
        assert raw.json() == {"matches": [content_id]}
        with_distance = platform_client.get("/m/raw_lookup", {**query, "include_distance": True})
        assert with_distance.status_code == 200
        [match] = with_distance.json()["matches"]
        assert set(match) == HMA_MATCH_FIELDS and match["bank_content_id"] == content_id
        assert isinstance(match["distance"], str)
        by_bank = platform_client.get("/m/lookup", query)
        assert by_bank.status_code == 200
        assert list(by_bank.json()) == ["SAMPLE"]
        assert [m["bank_content_id"] for m in by_bank.json()["SAMPLE"]] == [content_id]

    def test_raw_lookup_filters_by_banks(
        self, platform_client: APIClient, three_banks: dict[str, int]
    ) -> None:
        query = {"signal": pdq(10), "signal_type": "pdq"}
        assert len(platform_client.get("/m/raw_lookup", query).json()["matches"]) == 3
        only_a = platform_client.get("/m/raw_lookup", {**query, "banks": "BANK_A"}).json()
        assert only_a == {"matches": [three_banks["BANK_A"]]}
        two = platform_client.get("/m/raw_lookup", {**query, "banks": "BANK_A,BANK_B"}).json()
        assert sorted(two["matches"]) == sorted([three_banks["BANK_A"], three_banks["BANK_B"]])
        none = platform_client.get("/m/raw_lookup", {**query, "banks": "NON_EXISTENT_BANK"})
        assert none.status_code == 200
        assert none.json() == {"matches": []}

    def test_raw_lookup_with_distance_and_bank_filter(
        self, platform_client: APIClient, three_banks: dict[str, int]
    ) -> None:
        response = platform_client.get(
            "/m/raw_lookup",
            {
                "signal": pdq(10),
                "signal_type": "pdq",
                "include_distance": True,
                "banks": "BANK_A,BANK_B",
            },
        )
        assert response.status_code == 200
        matches = response.json()["matches"]
        assert len(matches) == 2
        assert all(set(m) == HMA_MATCH_FIELDS and m["distance"] == "0" for m in matches)

    def test_lookup_filters_by_banks(
        self, platform_client: APIClient, three_banks: dict[str, int]
    ) -> None:
        query = {"signal": pdq(10), "signal_type": "pdq"}
        assert set(platform_client.get("/m/lookup", query).json()) == {
            "BANK_A",
            "BANK_B",
            "BANK_C",
        }
        only_a = platform_client.get("/m/lookup", {**query, "banks": "BANK_A"}).json()
        assert list(only_a) == ["BANK_A"] and len(only_a["BANK_A"]) > 0
        a_and_c = platform_client.get("/m/lookup", {**query, "banks": "BANK_A,BANK_C"}).json()
        assert set(a_and_c) == {"BANK_A", "BANK_C"}
        none = platform_client.get("/m/lookup", {**query, "banks": "NON_EXISTENT_BANK"})
        assert none.status_code == 200 and none.json() == {}

    def test_add_hashes_check_the_index_and_find_a_match(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        create_bank(admin_client, "TEST_BANK")
        hashes = [pdq(100 + n) for n in range(16)]
        ids = [add_signals(admin_client, "TEST_BANK", {"pdq": h})["id"] for h in hashes]
        status = platform_client.get("/m/index/status?signal_type=pdq")
        assert status.status_code == 200
        assert status.json()["pdq"]["present"] is True
        assert status.json()["pdq"]["size"] == len(hashes)
        assert isinstance(status.json()["pdq"]["built_to"], int)
        response = platform_client.get(f"/m/lookup?signal_type=pdq&signal={hashes[-1]}")
        assert response.status_code == 200
        assert list(response.json()) == ["TEST_BANK"]
        assert _hma_part(response.json()["TEST_BANK"]) == [
            {"bank_content_id": ids[-1], "distance": "0"}
        ]
        nothing = platform_client.get(f"/m/lookup?signal_type=pdq&signal={'5' * 64}")
        assert nothing.status_code == 200 and nothing.json() == {}
        # Later additions and removals count at once (the base, plus its delta, less tombstones).
        add_signals(admin_client, "TEST_BANK", {"pdq": pdq(200)})
        add_signals(admin_client, "TEST_BANK", {"pdq": pdq(201)})
        assert admin_client.delete(f"/c/bank/TEST_BANK/content/{ids[0]}").status_code == 200
        later = platform_client.get("/m/index/status?signal_type=pdq").json()["pdq"]
        assert later["size"] == len(hashes) + 1

    def test_index_status_without_lists_says_not_present(self, platform_client: APIClient) -> None:
        response = platform_client.get("/m/index/status")
        assert response.status_code == 200
        assert response.json()["pdq"] == {"present": False, "built_to": -1, "size": 0}
        assert {"pdq", "video_md5", "vpdq"} <= set(response.json())
        assert platform_client.get("/m/index/status?signal_type=nope").status_code == 400

    def test_lookup_needs_a_signal_and_its_type(self, platform_client: APIClient) -> None:
        assert platform_client.get("/m/lookup?signal_type=pdq").status_code == 400
        assert platform_client.get(f"/m/lookup?signal={pdq(1)}").status_code == 400

    def test_a_nearby_hash_matches_within_the_threshold_with_its_distance(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        create_bank(admin_client, "NEAR")
        content_id = add_signals(admin_client, "NEAR", {"pdq": pdq(30)})["id"]
        near, far = flip(pdq(30), 9), flip(pdq(30), 32)
        response = platform_client.get(
            "/m/raw_lookup", {"signal": near, "signal_type": "pdq", "include_distance": True}
        )
        assert response.json() == {"matches": [{"bank_content_id": content_id, "distance": "9"}]}
        response = platform_client.get("/m/raw_lookup", {"signal": far, "signal_type": "pdq"})
        assert response.json() == {"matches": []}


@pytest.mark.django_db
class CompareCompatTests:
    """test_api.py: test_compare_hashes"""

    def test_two_pdq_hashes_compare_with_their_distance(self, platform_client: APIClient) -> None:
        left = pdq(40)
        right = flip(left, 9)
        response = platform_client.post("/m/compare", {"pdq": [left, right]}, format="json")
        assert response.status_code == 200
        assert response.json() == {"pdq": [True, {"distance": 9}]}

    @pytest.mark.parametrize(
        "body",
        [
            ["banana"],  # not a dict
            {"pdq": "banana"},  # values are not lists
            {"pdq": []},  # empty
            {"pdq": ["banana", "banana"]},  # invalid hashes
            {"pdq": [pdq(1), pdq(2), pdq(1)]},  # not exactly two
            {"nope": [pdq(1), pdq(2)]},  # unknown signal type
        ],
    )
    def test_malformed_comparisons_are_400(self, body: Any, platform_client: APIClient) -> None:
        response = platform_client.post("/m/compare", body, format="json")
        assert response.status_code == 400
        assert response.json()["message"]


@pytest.mark.django_db
class HashingCompatTests:
    """test_api.py: test_lookup_success (POST), test_hashing.py"""

    def test_a_photo_upload_hashes_to_its_pdq(self, platform_client: APIClient) -> None:
        response = platform_client.post("/h/hash?types=pdq", upload("photo", jpeg(5)))
        assert response.status_code == 200, response.content
        assert set(response.json()) == {"pdq"}
        assert len(response.json()["pdq"]) == 64

    def test_an_uploaded_photo_can_be_banked_and_looked_up(
        self, admin_client: APIClient, platform_client: APIClient
    ) -> None:
        """The issue's "done when": create a bank, add a signal, hash an upload, look it up."""
        create_bank(admin_client, "UPLOADS")
        hashed = platform_client.post("/h/hash", upload("photo", jpeg(6))).json()
        content_id = add_signals(admin_client, "UPLOADS", {"pdq": hashed["pdq"]})["id"]
        lookup = platform_client.post("/m/lookup", upload("photo", jpeg(6)))
        assert lookup.status_code == 200, lookup.content
        assert _hma_part(lookup.json()["pdq"]["UPLOADS"]) == [
            {"bank_content_id": content_id, "distance": "0"}
        ]
        by_hash = platform_client.get("/m/lookup", {"signal_type": "pdq", "signal": hashed["pdq"]})
        assert _hma_part(by_hash.json()["UPLOADS"]) == [
            {"bank_content_id": content_id, "distance": "0"}
        ]

    def test_a_file_in_an_unknown_field_or_two_files_are_refused(
        self, platform_client: APIClient
    ) -> None:
        assert platform_client.post("/h/hash", upload("file", jpeg(1))).status_code == 400
        both = {**upload("photo", jpeg(1)), **upload("video", jpeg(2))}
        assert platform_client.post("/h/hash", both).status_code == 400
        assert platform_client.post("/h/hash", {}).status_code == 400

    def test_fetching_by_url_is_not_offered(self, platform_client: APIClient) -> None:
        response = platform_client.get("/m/lookup?url=https://example.com/image.jpg")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "url_fetch_disabled"
        assert platform_client.get("/h/hash?url=https://example.com/a.jpg").status_code == 405

    def test_an_upload_over_the_limit_is_413(
        self, platform_client: APIClient, settings: Any
    ) -> None:
        settings.HMA_MAX_UPLOAD_BYTES = 1024
        response = platform_client.post("/h/hash", upload("photo", jpeg(1)))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
