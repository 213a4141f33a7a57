from django.urls import path

from . import views

app_name = "moderation"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/", views.queue, name="queue"),
    path("hash-lists/", views.hash_list_index, name="hash_lists"),
]
