"""The OpenAPI document (``/api/schema/``) and Swagger UI (``/api/docs/``): public, no API
key, no rate limit, no internet (Swagger UI's files come from drf-spectacular-sidecar, served
as static files). Errors are the API's JSON envelope, whatever format was asked for."""

from typing import Any

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class EnvelopeErrorsMixin:
    """Public (no key, no rate limit), GET only, and errors in the JSON envelope."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    http_method_names = ["get", "head"]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)  # type: ignore[misc]
        self.request.accepted_renderer = JSONRenderer()  # type: ignore[attr-defined]
        self.request.accepted_media_type = JSONRenderer.media_type  # type: ignore[attr-defined]
        return response


class HtmlPageNegotiation(BaseContentNegotiation):
    """The docs page is HTML whatever ``Accept`` says."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        return None

    def select_renderer(
        self, request: Any, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return (renderers[0], renderers[0].media_type)


class SchemaView(EnvelopeErrorsMixin, SpectacularAPIView):
    """YAML (``application/vnd.oai.openapi``) by default; JSON with ``?format=json`` or
    ``Accept: application/json``."""

    content_negotiation_class = DefaultContentNegotiation


class DocsView(EnvelopeErrorsMixin, SpectacularSwaggerView):
    content_negotiation_class = HtmlPageNegotiation
    url_name = "schema"
