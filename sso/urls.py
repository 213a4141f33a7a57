from django.urls import path

from . import views

app_name = "sso"

urlpatterns = [
    path("login", views.start, name="login"),
    path("callback", views.callback, name="callback"),
    path("logout", views.sign_out, name="logout"),
]
