"""Referral packet pages for safety leads: draft, submit, approve, progress, download, ack.

Imports models, selectors and the packet services; refusals (`PacketError`) become a message
and a redirect to the packet page through `core.pages`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.pages import refusal_redirects_to
from moderation.selectors import case_visible_to

from .. import signing
from ..builder import authorised_person
from ..models import Destination, ReferralPacket
from ..ncmec import ncmec_send
from ..packets import (
    CHANNELS,
    PacketError,
    packet_acknowledge,
    packet_approve,
    packet_draft,
    packet_open_for_download,
    packet_record_submission,
    packet_retry,
    packet_submit,
    packet_summary_edit,
)
from ..selectors.packets import packets_for


def _get_packet_for_user(request: HttpRequest, pk: int) -> ReferralPacket:
    """404 for packets the user has no object permission on."""
    try:
        return (
            packets_for(request.user)
            .select_related("destination", "drafted_by", "approved_by", "escalation")
            .get(pk=pk)
        )
    except ReferralPacket.DoesNotExist:
        raise Http404("No such packet") from None


@require_GET
@permission_required("reports.view_referralpacket", raise_exception=True)
def packet_index(request: HttpRequest) -> HttpResponse:
    packets = (
        packets_for(request.user).select_related("destination").prefetch_related("cases")[:200]
    )
    return render(request, "reports/packets.html", {"nav": "referrals", "packets": packets})


@require_http_methods(["GET", "POST"])
@permission_required("reports.add_referralpacket", raise_exception=True)
def packet_new(request: HttpRequest) -> HttpResponse:
    case_id = request.GET.get("case") or request.POST.get("case")
    case = get_object_or_404(case_visible_to(request.user), pk=case_id or 0)
    destinations = Destination.objects.filter(enabled=True).order_by("kind", "name")
    # A 999 call recorded for this case names the force that took it: preselect its
    # destination, since the follow-up report goes to the same force.
    called = case.escalations.filter(called_at__isnull=False).order_by("-called_at").first()
    preselected = (
        destinations.filter(kind=Destination.Kind.POLICE, police_force=called.police_force)
        .values_list("pk", flat=True)
        .first()
        if called
        else None
    )
    if request.method == "POST":
        destination = destinations.filter(pk=request.POST.get("destination") or 0).first()
        if destination is None:
            messages.error(request, "Choose an enabled destination.")
        else:
            try:
                packet = packet_draft(
                    cases=[case],
                    destination=destination,
                    priority=request.POST.get("priority", "routine"),
                    summary=request.POST.get("summary", ""),
                    actor=request.user,
                    drafted_by=request.user,
                    identity_documents=request.POST.get("identity_documents", ""),
                    identity_documents_detail=request.POST.get("identity_documents_detail", ""),
                )
                packet_submit(packet=packet, lead=request.user)
            except PacketError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request, f"{packet.reference} drafted; a second safety lead must approve it."
                )
                return redirect("reports:packet", pk=packet.pk)
    return render(
        request,
        "reports/packet_new.html",
        {
            "nav": "referrals",
            "case": case,
            "police_destinations": [d for d in destinations if d.kind == "police"],
            "other_destinations": [d for d in destinations if d.kind != "police"],
            "selected_destination": int(request.POST.get("destination") or 0) or preselected,
            "called": called,
            "identity_choices": ReferralPacket.IdentityDocuments.choices,
            "identity_documents": request.POST.get("identity_documents", ""),
            "identity_documents_detail": request.POST.get("identity_documents_detail", ""),
            "priorities": ReferralPacket.Priority.choices,
            # Immediate only when a child is at immediate risk; otherwise urgent, since every
            # CSEA report goes to the police as soon as possible. A re-shown form keeps the choice.
            "priority": request.POST.get("priority")
            or (
                ReferralPacket.Priority.IMMEDIATE
                if case.immediate_risk
                else ReferralPacket.Priority.URGENT
            ),
            "summary": request.POST.get("summary", ""),
        },
    )


@never_cache
@require_GET
@permission_required("reports.view_referralpacket", raise_exception=True)
def packet_detail(request: HttpRequest, pk: int) -> HttpResponse:
    packet = _get_packet_for_user(request, pk)
    if request.headers.get("Accept") == "application/json":
        return JsonResponse(
            {
                "status": packet.status,
                "progress": packet.progress,
                "label": packet.get_status_display(),
            }
        )
    return render(
        request,
        "reports/packet.html",
        {
            "nav": "referrals",
            "packet": packet,
            "cases": packet.cases.all(),
            "can_approve": request.user.has_perm("reports.approve_referralpacket", packet)
            and packet.drafted_by_id != request.user.pk,
            "authorised_person": authorised_person(),
            "identity_choices": ReferralPacket.IdentityDocuments.choices,
            "channels": CHANNELS,
        },
    )


@require_POST
@permission_required("reports.change_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_submit_view(request: HttpRequest, pk: int) -> HttpResponse:
    packet = packet_submit(
        packet=_get_packet_for_user(request, pk),
        lead=request.user,
        identity_documents=request.POST.get("identity_documents", ""),
        identity_documents_detail=request.POST.get("identity_documents_detail", ""),
    )
    messages.success(
        request, f"{packet.reference} submitted: another lead approves it before it is built."
    )
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.change_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_summary_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A lead edits a draft's incident summary (refused once submitted)."""
    packet = packet_summary_edit(
        packet=_get_packet_for_user(request, pk),
        lead=request.user,
        summary=request.POST.get("summary", ""),
    )
    messages.success(request, f"Summary of {packet.reference} saved.")
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.approve_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    packet = packet_approve(
        packet=_get_packet_for_user(request, pk),
        lead=request.user,
        declaration_confirmed=request.POST.get("declaration_confirmed") == "on",
    )
    messages.success(request, f"{packet.reference} approved: it is being built and signed.")
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.download_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_ncmec_send_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Send an NCMEC packet's signed CyberTipline XML through the ESP API (/submit, /finish)."""
    packet = _get_packet_for_user(request, pk)
    if not request.user.has_perm("reports.download_referralpacket", packet):
        raise Http404("No such packet")
    packet = ncmec_send(packet=packet, lead=request.user)
    messages.success(request, f"Sent to NCMEC: report ID {packet.external_reference}.")
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.download_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_sent_view(request: HttpRequest, pk: int) -> HttpResponse:
    packet = _get_packet_for_user(request, pk)
    if not request.user.has_perm("reports.download_referralpacket", packet):
        raise Http404("No such packet")
    packet_record_submission(
        packet=packet,
        lead=request.user,
        channel=request.POST.get("channel", ""),
        reference=request.POST.get("reference", ""),
    )
    messages.success(request, f"{packet.reference} recorded as sent.")
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.change_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    packet = packet_retry(packet=_get_packet_for_user(request, pk), lead=request.user)
    messages.success(request, f"{packet.reference}: building again.")
    return redirect("reports:packet", pk=pk)


@require_POST
@permission_required("reports.change_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    packet = packet_acknowledge(
        packet=_get_packet_for_user(request, pk),
        lead=request.user,
        reference=request.POST.get("reference", ""),
    )
    messages.success(request, f"{packet.reference}: the recipient's acknowledgement is recorded.")
    return redirect("reports:packet", pk=pk)


@never_cache
@require_GET
@permission_required("reports.download_referralpacket", raise_exception=True)
@refusal_redirects_to("reports:packet", "pk")
def packet_download(request: HttpRequest, pk: int) -> HttpResponse:
    packet = _get_packet_for_user(request, pk)
    path = packet_open_for_download(packet=packet, lead=request.user)
    response = FileResponse(
        path.open("rb"),
        content_type="application/zip",
        as_attachment=True,
        filename=f"{packet.reference}.zip",
    )
    response["Cache-Control"] = "no-store, private"
    return response


@require_GET
@permission_required("reports.view_referralpacket", raise_exception=True)
def public_key(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reports/public_key.html",
        {
            "nav": "referrals",
            "pem": signing.public_key_pem().decode(),
            "fingerprint": signing.fingerprint(),
        },
    )
