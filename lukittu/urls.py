"""URLs: the admin, the Developer API, and the envelope 404 for anything else under /api/."""

from django.contrib import admin
from django.urls import path, re_path

from lukittu.api import api_not_found
from releases.views import ReleaseDetailView, ReleaseListView

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "api/v1/dev/teams/<str:team_id>/releases",
        ReleaseListView.as_view(),
        name="release-list",
    ),
    path(
        "api/v1/dev/teams/<str:team_id>/releases/<str:release_id>",
        ReleaseDetailView.as_view(),
        name="release-detail",
    ),
    re_path(r"^api/", api_not_found),
]

handler400 = "lukittu.api.bad_request"
handler403 = "lukittu.api.permission_denied"
handler500 = "lukittu.api.server_error"
