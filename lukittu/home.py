"""The page at ``/``: where a newcomer who opens the service's address in a browser finds the
API docs, the admin, the documentation and the probes. A plain Django page, outside the API
(no key, no envelope), with nothing loaded from another site."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_safe


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    links = [
        (reverse("docs"), "API docs", "Swagger UI: every operation, with Try it out."),
        (reverse("schema"), "OpenAPI document", "YAML; add ?format=json for JSON."),
        (reverse("admin:index"), "Admin", "Teams, keys, licenses, releases, the audit log."),
        (reverse("healthz"), "/healthz", "Liveness: the process answers."),
        (reverse("readyz"), "/readyz", "Readiness: the database, cache and storage."),
    ]
    return TemplateResponse(
        request,
        "lukittu/home.html",
        {"links": links, "docs_url": settings.DOCS_URL},
    )
