from django.contrib.auth import views as auth_views
from django.urls import path

from .twofactor import two_factor

app_name = "core"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/2fa/", two_factor, name="two_factor"),
]
