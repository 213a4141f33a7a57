from django.urls import path

from . import views

app_name = "principles"

urlpatterns = [
    path("", views.principle_index, name="index"),
    path("<int:number>/", views.principle_detail, name="detail"),
]
