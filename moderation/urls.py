from django.urls import path

from . import views

app_name = "moderation"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/", views.queue, name="queue"),
    path("hash-lists/", views.hash_list_index, name="hash_lists"),
    path("hash-lists/new", views.hash_list_create, name="hash_list_create"),
    path("hash-lists/<int:pk>/import", views.hash_list_import, name="hash_list_import"),
    path("hash-imports/<int:pk>", views.hash_import_progress, name="hash_import_progress"),
]
