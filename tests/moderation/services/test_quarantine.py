"""Hash hygiene (moderation.services.quarantine): verdicts, precision, false-positive and flood
quarantine, a lead's review."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from core.audit import SystemActor
from core.models import AuditEvent
from moderation.models import Case, KnownHash, Match
from moderation.selectors import known_material_cases, list_precision, quarantined_hashes
from moderation.services.hashlists import hash_import_create, hash_import_run, hash_list_upsert
from moderation.services.matches import media_rescan_batch
from moderation.services.queue import case_claim_next
from tests.conftest import client_for
from tests.moderation.factories import make_item

ACTOR = SystemActor("test")


def _exact_list_of(*items: Any) -> Any:
    hash_list, _ = hash_list_upsert(name="S", algorithm="sha256", actor=ACTOR, verified=True)
    content = "".join(f"{item.media.sha256},A,\n" for item in items).encode()
    imp = hash_import_create(hash_list=hash_list, content=content, filename="s", actor=ACTOR)
    hash_import_run(import_id=imp.pk)
    return hash_list


def _matched_items(n: int, seed: int = 300) -> list[Any]:
    """n items with the same image (one listed hash), listed, then rescanned."""
    items = [make_item(kind="image", seed=seed, subject=f"s-{seed}-{k}") for k in range(n)]
    hash_list = _exact_list_of(items[0])
    media_rescan_batch(hash_list_id=hash_list.pk, after_id=0)
    return items


@pytest.mark.django_db
class VerdictTests:
    def test_the_holder_records_a_verdict_and_the_list_precision_follows(
        self, moderator: Any
    ) -> None:
        [item] = _matched_items(1)
        case = case_claim_next(user=moderator)
        assert case is not None and case.pk == item.case_id
        match = Match.objects.get(media=item.media)
        client = client_for(moderator)
        response = client.post(
            f"/cases/{case.pk}/matches/{match.pk}/verdict", {"verdict": "true_positive"}
        )
        assert response.status_code == 302
        match.refresh_from_db()
        assert match.verdict == "true_positive" and match.verdict_by == moderator
        assert AuditEvent.objects.filter(verb="match.verdict").exists()
        assert list_precision() == {match.hash_list_id: (1.0, 1)}

    def test_someone_who_does_not_hold_the_case_cannot_give_a_verdict(
        self, moderator: Any, moderator2: Any, outsider: Any
    ) -> None:
        [item] = _matched_items(1)
        case_claim_next(user=moderator)
        match = Match.objects.get(media=item.media)
        url = f"/cases/{item.case_id}/matches/{match.pk}/verdict"
        client_for(moderator2).post(url, {"verdict": "false_positive"})
        assert client_for(outsider).post(url, {"verdict": "false_positive"}).status_code == 403
        match.refresh_from_db()
        assert match.verdict == ""


@pytest.mark.django_db
class QuarantineTests:
    def test_repeated_false_positives_quarantine_the_hash_and_stop_automatic_action(
        self, lead: Any, admin_user: Any, settings: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_FALSE_POSITIVES_TO_QUARANTINE = 2
        items = _matched_items(3)
        assert known_material_cases().filter(pk=items[0].case_id).exists()
        client = client_for(lead)  # leads may give verdicts on any case
        with django_capture_on_commit_callbacks(execute=True):
            for item in items[:2]:
                match = Match.objects.get(media=item.media)
                client.post(
                    f"/cases/{item.case_id}/matches/{match.pk}/verdict",
                    {"verdict": "false_positive"},
                )
        known = KnownHash.objects.get()
        assert known.quarantined_at is not None and "2 false-positive" in known.quarantine_reason
        assert not known_material_cases().filter(pk=items[0].case_id).exists()
        assert not known_material_cases().filter(pk=items[2].case_id).exists()
        assert [m.to for m in mail.outbox] == [[admin_user.email]]  # admins alerted once
        page = client.get("/hash-lists/quarantine").content.decode()
        assert "2 false-positive verdicts" in page
        # A new item with the same image is matched and shown, but raises nothing.
        late = make_item(kind="image", seed=300, subject="late")
        match = Match.objects.get(media=late.media)
        assert "no automatic action" in match.flags.get().note
        assert Case.objects.get(pk=late.case_id).category.code != "known_csam"

    def test_a_lead_releases_or_withdraws_a_quarantined_hash(self, lead: Any) -> None:
        items = _matched_items(1)
        known = KnownHash.objects.get()
        KnownHash.objects.filter(pk=known.pk).update(
            quarantined_at=items[0].created_at, quarantine_reason="test"
        )
        client = client_for(lead)
        client.post(f"/hash-lists/quarantine/{known.pk}", {"action": "release"})
        known.refresh_from_db()
        assert known.quarantined_at is None and known.withdrawn_at is None
        KnownHash.objects.filter(pk=known.pk).update(
            quarantined_at=items[0].created_at, quarantine_reason="test"
        )
        client.post(f"/hash-lists/quarantine/{known.pk}", {"action": "withdraw"})
        known.refresh_from_db()
        assert known.quarantined_at is None and known.withdrawn_at is not None
        assert not quarantined_hashes().exists()
        assert AuditEvent.objects.filter(verb="known_hash.withdrawn").exists()

    def test_moderators_and_outsiders_cannot_review_the_quarantine(
        self, moderator: Any, outsider: Any
    ) -> None:
        for user in (moderator, outsider):
            assert client_for(user).get("/hash-lists/quarantine").status_code == 403


@pytest.mark.django_db
class FloodControlTests:
    def test_a_perceptual_hash_matching_too_many_new_items_in_an_hour_is_quarantined(
        self, settings: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        settings.SAFEGUARD_FLOOD_ITEMS_PER_HOUR = 3
        probe = make_item(kind="image", seed=301, subject="probe")
        hash_list, _ = hash_list_upsert(name="P", algorithm="pdq", actor=ACTOR, min_quality=0)
        imp = hash_import_create(
            hash_list=hash_list,
            content=f"{probe.media.pdq},A,\n".encode(),
            filename="p",
            actor=ACTOR,
        )
        with django_capture_on_commit_callbacks(execute=True):
            hash_import_run(import_id=imp.pk)  # its rescan (at the end) matches the probe
            items = [make_item(kind="image", seed=301, subject=f"f-{k}") for k in range(4)]
        known = KnownHash.objects.get()
        assert known.quarantined_at is not None and "flood control" in known.quarantine_reason
        raised = [Case.objects.get(pk=i.case_id).category.code == "known_csam" for i in items]
        assert raised == [True, True, True, False]  # the 4th new item in the hour tripped it
        assert len(mail.outbox) == 1

    def test_exact_digests_and_rescans_are_never_flood_controlled(self, settings: Any) -> None:
        settings.SAFEGUARD_FLOOD_ITEMS_PER_HOUR = 1
        _matched_items(3)  # an exact list, matched by a rescan and by new items alike
        make_item(kind="image", seed=300, subject="new")
        assert not KnownHash.objects.filter(quarantined_at__isnull=False).exists()


@pytest.mark.django_db
class FalseMatchTests:
    def test_a_match_called_false_justifies_no_bulk_action(self, lead: Any) -> None:
        [item] = _matched_items(1, seed=302)
        assert known_material_cases().filter(pk=item.case_id).exists()
        match = Match.objects.get(media=item.media)
        client_for(lead).post(
            f"/cases/{item.case_id}/matches/{match.pk}/verdict", {"verdict": "false_positive"}
        )
        assert not known_material_cases().filter(pk=item.case_id).exists()


@pytest.mark.django_db
class ReleaseTests:
    def test_false_verdicts_before_a_release_no_longer_count(
        self, lead: Any, settings: Any
    ) -> None:
        settings.SAFEGUARD_FALSE_POSITIVES_TO_QUARANTINE = 2
        items = _matched_items(3, seed=303)
        client = client_for(lead)

        def call_false(item: Any) -> None:
            match = Match.objects.get(media=item.media)
            client.post(
                f"/cases/{item.case_id}/matches/{match.pk}/verdict",
                {"verdict": "false_positive"},
            )

        call_false(items[0])
        call_false(items[1])
        known = KnownHash.objects.get()
        assert known.quarantined_at is not None
        client.post(f"/hash-lists/quarantine/{known.pk}", {"action": "release"})
        call_false(items[2])  # one new false verdict: not yet the two that quarantine
        known.refresh_from_db()
        assert known.quarantined_at is None and known.released_at is not None
