"""Root URLs: the Django admin (the UI), the REST API (docs/api.md) and Prometheus metrics (docs/operations.md)."""
from django.contrib import admin
from django.urls import include, path

from flows.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("flows.api.urls")),
    path("metrics", metrics_view, name="metrics"),
]

# Under /api/ these answer with the API's error body rather than an HTML page (flows/api/urls.py).
handler400 = "flows.api.urls.bad_request"
handler500 = "flows.api.urls.server_error"
