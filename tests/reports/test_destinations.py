"""Referral destinations (reports.destinations, the destinations API and pages): every UK police
force is a destination, leads list them, admins edit them (audited), dry run until a contact
route is set."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from moderation.forces import police_forces, police_forces_version, uk_police_forces
from moderation.models import Escalation
from moderation.services.escalations import escalation_open
from reports.destinations import DestinationError, destination_update, police_destination
from reports.models import Destination
from tests.conftest import client_for
from tests.moderation.factories import make_case, record_999_call

from .factories import police


def test_the_force_list_is_complete_versioned_and_coded() -> None:
    forces = police_forces()
    nations = [f.nation for f in forces]
    # The 43 territorial forces of England and Wales, Police Scotland, PSNI and BTP.
    assert nations.count("England") + nations.count("Wales") == 43
    assert nations.count("Wales") == 4
    assert {f.name for f in forces if f.nation in ("Scotland", "Northern Ireland")} == {
        "Police Scotland",
        "Police Service of Northern Ireland",
    }
    assert [f.name for f in forces if f.kind == "special"] == ["British Transport Police"]
    assert len({f.code for f in forces}) == len(forces) == 46
    assert uk_police_forces()[0] == "Avon and Somerset Constabulary"
    assert police_forces_version()


@pytest.mark.django_db
class ForceDestinationsTests:
    def test_every_force_is_a_dry_run_destination_with_its_code(self) -> None:
        destinations = Destination.objects.filter(kind="police")
        assert {d.code for d in destinations} == {f.code for f in police_forces()}
        assert {d.mode for d in destinations} == {"dry_run"}
        assert Destination.objects.get(code="nca").kind == "nca_ceop"
        assert Destination.objects.get(code="iwf").kind == "iwf"

    def test_a_999_calls_force_maps_to_its_destination(self) -> None:
        assert police_destination("Kent Police") == police()
        with pytest.raises(DestinationError, match="not a UK police force"):
            police_destination("Gotham PD")


@pytest.mark.django_db
class DestinationServiceTests:
    def test_leaving_dry_run_needs_a_contact_route_and_changes_are_audited(
        self, admin_user: Any
    ) -> None:
        kent = police()
        with pytest.raises(DestinationError) as refused:
            destination_update(actor=admin_user, destination=kent, mode="production")
        assert refused.value.field == "mode"
        kent.refresh_from_db()
        assert kent.mode == "dry_run"
        assert not AuditEvent.objects.filter(verb="destination.updated").exists()
        updated = destination_update(
            actor=admin_user,
            destination=kent,
            contact_url="https://portal.police.example/report",
            mode="production",
        )
        assert updated.mode == "production" and updated.has_contact_route
        event = AuditEvent.objects.get(verb="destination.updated")
        assert event.data["changed"]["mode"] == {"from": "dry_run", "to": "production"}

    def test_ncmec_stays_in_dry_run_until_credentials_are_set(
        self, admin_user: Any, settings: Any
    ) -> None:
        ncmec = Destination.objects.create(name="NCMEC", kind="ncmec", jurisdiction="US")
        settings.SAFEGUARD_NCMEC_USERNAME = ""
        with pytest.raises(DestinationError, match="SAFEGUARD_NCMEC_USERNAME"):
            destination_update(actor=admin_user, destination=ncmec, mode="test")
        settings.SAFEGUARD_NCMEC_USERNAME = "esp"
        settings.SAFEGUARD_NCMEC_PASSWORD = "synthetic"
        assert destination_update(actor=admin_user, destination=ncmec, mode="test").mode == "test"


@pytest.mark.django_db
class DestinationApiTests:
    def test_leads_list_and_search_destinations_moderators_cannot(
        self, lead: Any, moderator: Any
    ) -> None:
        response = client_for(lead).get("/api/v1/destinations?kind=police&q=kent")
        assert response.status_code == 200
        (kent,) = response.json()
        assert kent["code"] == "kent" and kent["mode"] == "dry_run"
        assert kent["id"] == police().pk and kent["has_contact_route"] is False
        everything = client_for(lead).get("/api/v1/destinations").json()
        assert {"police", "nca_ceop", "iwf"} <= {d["kind"] for d in everything}
        assert client_for(moderator).get("/api/v1/destinations").status_code == 403

    def test_admins_create_and_edit_leads_cannot(self, lead: Any, admin_user: Any) -> None:
        body = {"name": "Regional safeguarding hub", "kind": "police", "police_force": "Kent"}
        assert client_for(lead).post("/api/v1/destinations", body, format="json").status_code == 403
        response = client_for(admin_user).post("/api/v1/destinations", body, format="json")
        assert response.status_code == 400
        assert "police_force" in response.json()["error"]["fields"]
        response = client_for(admin_user).post(
            "/api/v1/destinations",
            {
                "name": "Child exploitation hub",
                "kind": "nca_ceop",
                "contact_email": "x@nca.example",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        created = response.json()
        assert AuditEvent.objects.filter(verb="destination.created").count() == 1
        path = f"/api/v1/destinations/{created['id']}"
        assert client_for(lead).patch(path, {"mode": "test"}, format="json").status_code == 403
        response = client_for(admin_user).patch(path, {"mode": "test"}, format="json")
        assert response.status_code == 200 and response.json()["mode"] == "test"
        response = client_for(admin_user).patch(path, {"kind": "iwf"}, format="json")
        assert response.status_code == 400 and "kind" in response.json()["error"]["fields"]


@pytest.mark.django_db
class DestinationPageTests:
    def test_an_admin_records_a_contact_route_on_the_page(self, admin_user: Any) -> None:
        kent = police()
        client = client_for(admin_user)
        page = client.get(f"/referrals/destinations/{kent.pk}/")
        assert page.status_code == 200 and b"Contact route" in page.content
        response = client.post(
            f"/referrals/destinations/{kent.pk}/",
            {"name": kent.name, "police_force": kent.police_force, "mode": "production"},
        )
        assert response.status_code == 200 and b"Record a contact route" in response.content
        response = client.post(
            f"/referrals/destinations/{kent.pk}/",
            {
                "name": kent.name,
                "police_force": kent.police_force,
                "contact_email": "referrals@kent.police.example",
                "mode": "production",
                "enabled": "on",
            },
        )
        assert response.status_code == 302
        kent.refresh_from_db()
        assert kent.mode == "production" and kent.contact_email.startswith("referrals@")
        assert AuditEvent.objects.filter(verb="destination.updated", object_id=str(kent.pk))

    def test_leads_search_the_list_but_cannot_edit(self, lead: Any) -> None:
        client = client_for(lead)
        page = client.get("/referrals/destinations/?q=scotland")
        assert page.status_code == 200
        assert b"Police Scotland" in page.content and b"Kent Police" not in page.content
        assert client.get(f"/referrals/destinations/{police().pk}/").status_code == 403

    def test_the_referral_form_lists_forces_and_preselects_the_999_calls_force(
        self, lead: Any
    ) -> None:
        case = make_case(kind="message")
        page = client_for(lead).get(f"/referrals/new?case={case.pk}").content.decode()
        assert 'optgroup label="UK police forces"' in page and "Police Scotland" in page
        assert "selected>Kent Police" not in page
        escalation, _ = escalation_open(
            case=case, tier=Escalation.Tier.IMMEDIATE_RISK, actor=lead, reason="synthetic"
        )
        record_999_call(escalation, lead, police_force="Kent Police")
        page = client_for(lead).get(f"/referrals/new?case={case.pk}").content.decode()
        assert f'value="{police().pk}" selected>Kent Police' in page
