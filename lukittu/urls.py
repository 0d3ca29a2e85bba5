"""URLs: the page at /, the admin, the Developer API, its OpenAPI document and Swagger UI,
the envelope 404 for anything else under /api/, and the probes and metrics for operators."""

from django.contrib import admin
from django.urls import path, re_path

from delivery.views import ClassloaderView, DownloadView, LatestView
from lukittu import health, metrics
from lukittu.api import api_not_found
from lukittu.docs import DocsView, SchemaView
from lukittu.home import home
from releases.catalog_views import (
    BranchDetailView,
    BranchListView,
    ProductDetailView,
    ProductListView,
)
from releases.views import ReleaseDetailView, ReleaseListView
from webhooks.views import (
    WebhookDeliveryListView,
    WebhookDetailView,
    WebhookListView,
    WebhookRedeliverView,
    WebhookRotateSecretView,
    WebhookTestView,
)

WEBHOOKS = "api/v1/dev/teams/<str:teamId>/webhooks"

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "api/v1/dev/teams/<str:teamId>/releases",
        ReleaseListView.as_view(),
        name="release-list",
    ),
    path(
        "api/v1/dev/teams/<str:teamId>/releases/<str:releaseId>",
        ReleaseDetailView.as_view(),
        name="release-detail",
    ),
    path(
        "api/v1/client/teams/<str:teamId>/verification/classloader",
        ClassloaderView.as_view(),
        name="client-classloader",
    ),
    path(
        "api/v1/client/teams/<str:teamId>/releases/download",
        DownloadView.as_view(),
        name="client-download",
    ),
    path(
        "api/v1/client/teams/<str:teamId>/releases/latest",
        LatestView.as_view(),
        name="client-latest",
    ),
    path(
        "api/v1/dev/teams/<str:teamId>/products",
        ProductListView.as_view(),
        name="product-list",
    ),
    path(
        "api/v1/dev/teams/<str:teamId>/products/<str:productId>",
        ProductDetailView.as_view(),
        name="product-detail",
    ),
    path(
        "api/v1/dev/teams/<str:teamId>/products/<str:productId>/branches",
        BranchListView.as_view(),
        name="branch-list",
    ),
    path(
        "api/v1/dev/teams/<str:teamId>/branches/<str:branchId>",
        BranchDetailView.as_view(),
        name="branch-detail",
    ),
    path(WEBHOOKS, WebhookListView.as_view(), name="webhook-list"),
    path(f"{WEBHOOKS}/<str:webhookId>", WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        f"{WEBHOOKS}/<str:webhookId>/rotate-secret",
        WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(f"{WEBHOOKS}/<str:webhookId>/test", WebhookTestView.as_view(), name="webhook-test"),
    path(
        f"{WEBHOOKS}/<str:webhookId>/deliveries",
        WebhookDeliveryListView.as_view(),
        name="webhook-delivery-list",
    ),
    path(
        f"{WEBHOOKS}/<str:webhookId>/deliveries/<str:deliveryId>/redeliver",
        WebhookRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(), name="docs"),
    re_path(r"^api/", api_not_found),
    # Outside /api/: no API key, no rate limit, no envelope.
    path("", home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

handler400 = "lukittu.api.bad_request"
handler403 = "lukittu.api.permission_denied"
handler500 = "lukittu.api.server_error"
