"""Console pages (reports.views): packet pages, compliance pages, who may see them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.utils import timezone
from guardian.shortcuts import remove_perm

from moderation.models import Escalation
from moderation.services.escalations import case_mark_immediate_risk
from principles.models import HarmCategory
from reports.models import ReferralPacket, TransparencyReport
from tests.conftest import client_for
from tests.moderation.factories import make_case
from tests.reports.factories import decided_case, drafted_packet

from .factories import decide, ready_packet


@pytest.mark.django_db
class PacketPageTests:
    def test_a_refused_action_shows_why_on_the_packet_page(self, moderator: Any, lead: Any) -> None:
        packet = drafted_packet(moderator, lead)
        response = client_for(lead).post(f"/referrals/{packet.pk}/approve")
        assert response.status_code == 302 and response["Location"] == f"/referrals/{packet.pk}/"
        assert [str(m) for m in get_messages(response.wsgi_request)] == [
            "Only packets awaiting approval can be approved (this one is draft)."
        ]
        assert ReferralPacket.objects.get(pk=packet.pk).status == "draft"

    def test_submitting_and_approving_say_what_happens_next(
        self, moderator: Any, lead: Any, lead2: Any
    ) -> None:
        packet = drafted_packet(moderator, lead)
        response = client_for(lead).post(f"/referrals/{packet.pk}/submit")
        assert [str(m) for m in get_messages(response.wsgi_request)] == [
            f"{packet.reference} submitted: another lead approves it before it is built."
        ]
        response = client_for(lead2).post(
            f"/referrals/{packet.pk}/approve", {"declaration_confirmed": "on"}
        )
        assert [str(m) for m in get_messages(response.wsgi_request)] == [
            f"{packet.reference} approved: it is being built and signed."
        ]
        assert ReferralPacket.objects.get(pk=packet.pk).status != "draft"

    def test_the_new_packet_form_defaults_to_immediate_only_for_a_child_at_risk(
        self, moderator: Any, lead: Any
    ) -> None:
        selected = '<option value="{}" selected>'
        case = make_case(kind="message")
        html = client_for(lead).get(f"/referrals/new?case={case.pk}").content.decode()
        assert selected.format("urgent") in html
        assert selected.format("immediate") not in html
        case_mark_immediate_risk(case=case, actor=moderator, reason="threat")
        html = client_for(lead).get(f"/referrals/new?case={case.pk}").content.decode()
        assert selected.format("immediate") in html


@pytest.mark.django_db
class PacketPagePermissionTests:
    def test_moderators_and_outsiders_cannot_open_packet_pages(
        self,
        moderator: Any,
        outsider: Any,
        lead: Any,
        lead2: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        for user in (moderator, outsider):
            c = client_for(user)
            assert c.get(f"/referrals/{packet.pk}/").status_code == 403
            assert c.get(f"/referrals/{packet.pk}/download").status_code == 403

    def test_a_lead_without_object_permission_gets_404(
        self, moderator: Any, lead: Any, lead2: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        packet = ready_packet(moderator, lead, lead2, django_capture_on_commit_callbacks)
        group = Group.objects.get(name="Safety lead")
        for perm in ("view_referralpacket", "download_referralpacket", "approve_referralpacket"):
            remove_perm(f"reports.{perm}", group, packet)
        assert client_for(lead).get(f"/referrals/{packet.pk}/download").status_code == 404


@pytest.mark.django_db
class TransparencyPageTests:
    def test_the_console_generates_a_report_with_progress_and_exports(
        self, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = client_for(lead)
        day = timezone.now().date().isoformat()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/compliance/transparency/", {"start": day, "end": day})
        report = TransparencyReport.objects.get()
        assert response.status_code == 302 and report.status == "done"
        assert report.progress == 100
        assert client.get(f"/compliance/transparency/{report.pk}/?format=csv")[
            "Content-Type"
        ].startswith("text/csv")
        assert json.loads(client.get(f"/compliance/transparency/{report.pk}/?format=json").content)[
            "metrics"
        ]
        assert (
            b"Methodology"
            in client.get(f"/compliance/transparency/{report.pk}/?format=html").content
        )
        response = client.post("/compliance/transparency/", {"start": day, "end": "2000-01-01"})
        assert TransparencyReport.objects.count() == 1

    def test_the_list_shows_the_period_as_entered_with_its_last_day(
        self, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = client_for(lead)
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/compliance/transparency/", {"start": "2026-11-01", "end": "2026-12-01"})
        report = TransparencyReport.objects.get()
        assert report.end.isoformat() == "2026-12-02"  # stored exclusive
        listing = client.get("/compliance/transparency/").content.decode()
        assert "1 Nov 2026 \u2013 1 Dec 2026" in listing and "2 Dec 2026" not in listing
        page = client.get(f"/compliance/transparency/{report.pk}/").content.decode()
        assert "2026-11-01 to 2026-12-01" in page

    def test_the_report_page_names_categories_and_outcomes_rather_than_codes(
        self, moderator: Any, lead: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        decided_case(moderator)
        day = timezone.now().date().isoformat()
        client = client_for(lead)
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/compliance/transparency/", {"start": day, "end": day})
        report = TransparencyReport.objects.get()
        assert "grooming" in report.metrics["metrics"]["items_by_category"]  # codes kept
        html = client.get(f"/compliance/transparency/{report.pk}/").content.decode()
        label = HarmCategory.objects.get(code="grooming").label
        assert f"<td>{label}</td>" in html and "<td>grooming</td>" not in html
        assert "<td>Remove and report</td>" in html and "<td>remove_and_report</td>" not in html


@pytest.mark.django_db
class QaPageTests:
    def test_a_refused_or_malformed_sample_request_says_why_on_the_qa_page(
        self, lead: Any, moderator2: Any
    ) -> None:
        day = timezone.now().date().isoformat()
        for form, message in (
            ({"start": day, "end": day}, "Choose a reviewer."),
            ({"start": day, "end": "2000-01-01"}, "before it starts"),
            (
                {"start": day, "end": day, "reviewer": moderator2.pk, "size": "ten"},
                "invalid literal for int()",
            ),
            ({"start": day, "end": day, "reviewer": moderator2.pk}, "No decisions"),
        ):
            response = client_for(lead).post("/compliance/qa/", form)
            assert response.status_code == 302 and response["Location"] == "/compliance/qa/"
            [shown] = [str(m) for m in get_messages(response.wsgi_request)]
            assert message in shown, form


@pytest.mark.django_db
class CompliancePageTests:
    def test_leads_and_admins_see_compliance_moderators_and_outsiders_do_not(
        self, lead: Any, admin_user: Any, moderator: Any, outsider: Any
    ) -> None:
        urls = [
            "/compliance/",
            "/compliance/principles/1/",
            "/compliance/operations/",
            "/compliance/transparency/",
            "/compliance/qa/",
        ]
        for url in urls:
            assert client_for(lead).get(url).status_code == 200, url
            assert client_for(admin_user).get(url).status_code == 200, url
            assert client_for(moderator).get(url).status_code == 403, url
            assert client_for(outsider).get(url).status_code == 403, url

    def test_pages_render_charts_and_explain_bad_periods(self, lead: Any, moderator: Any) -> None:
        decide(moderator, "grooming")
        html = client_for(lead).get("/compliance/principles/3/").content.decode()
        assert "<svg" in html and 'role="img"' in html
        response = client_for(lead).get(
            "/compliance/operations/?start=2026-05-01&end=2026-01-01", follow=True
        )
        assert "before it starts" in response.content.decode()
        assert client_for(lead).get("/compliance/principles/13/").status_code == 404
        decide(moderator, "grooming", outcome="remove_and_report")
        ops = client_for(lead).get("/compliance/operations/").content.decode()
        assert "Remove and report" in ops and "remove_and_report" not in ops

    def test_a_zero_minute_step_shows_as_zero_not_as_no_data(self, lead: Any) -> None:
        # A 999 call recorded within seconds of the acknowledgement is a median of 0.0
        # minutes: a real figure, which "—" (no escalations in the period) would hide.
        now = timezone.now()
        Escalation.objects.create(
            case=make_case(),
            tier=Escalation.Tier.IMMEDIATE_RISK,
            reason="synthetic",
            opened_at=now - timedelta(seconds=36),
            acknowledged_at=now - timedelta(seconds=1),
            called_at=now,
            sla_due_at=now,
        )
        html = client_for(lead).get("/compliance/operations/").content.decode()
        assert '<div class="stat">0.6 → 0.0 → —</div>' in html
