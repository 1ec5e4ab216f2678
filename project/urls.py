"""Root URLs: the Django admin (the UI) and the REST API (docs/api.md)."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("flows.api.urls")),
]
