from django.contrib.auth import views as auth_views
from django.urls import path

from . import audit_views, people_views, token_views
from .twofactor import enrolment_link, two_factor
from .views import ConsoleLoginView, keep_alive

app_name = "core"

urlpatterns = [
    path("login/", ConsoleLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/2fa/", two_factor, name="two_factor"),
    # An admin-issued, one-time second-factor enrolment link (core.enrolment).
    path("account/2fa/enrol/<str:token>", enrolment_link, name="enrolment_link"),
    # Invitations: the one-time set-password link (core.people_views.set_password).
    path(
        "account/set-password/<str:uidb64>/<str:token>/",
        people_views.set_password,
        name="set_password",
    ),
    # People and API tokens (admins).
    path("people/", people_views.index, name="people"),
    path("people/invite", people_views.invite, name="person_invite"),
    path("people/<str:username>/", people_views.detail, name="person"),
    path("people/<str:username>/role", people_views.change_role, name="person_role"),
    path("people/<str:username>/deactivate", people_views.deactivate, name="person_deactivate"),
    path("people/<str:username>/unlock", people_views.unlock, name="person_unlock"),
    path(
        "people/<str:username>/enrolment-link",
        people_views.issue_enrolment_link,
        name="person_enrolment_link",
    ),
    path("people/<str:username>/reactivate", people_views.reactivate, name="person_reactivate"),
    path(
        "people/<str:username>/reset-2fa",
        people_views.reset_two_factor,
        name="person_reset_two_factor",
    ),
    path(
        "people/<str:username>/invitation",
        people_views.renew_invitation,
        name="person_renew_invitation",
    ),
    path("tokens/", token_views.index, name="tokens"),
    path("tokens/new", token_views.issue, name="token_issue"),
    path("tokens/<int:pk>/revoke", token_views.revoke, name="token_revoke"),
    path("account/keep-alive", keep_alive, name="keep_alive"),
    path("audit/", audit_views.audit_index, name="audit"),
]
